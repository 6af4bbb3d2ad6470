import type { StreamPath } from "../../shared/contract/subjects.js";
import { forbidden, type Writer } from "../../shared/log/writer.js";
import { appendToAgentStream } from "./agent-stream-append.js";
import { maxMessageBytes } from "../../shared/nats/connection.js";
import { closedConflict, contentTypeConflict, type DurableDeps } from "./protocol-context.js";
import { storeAndCommit, writeToCurrentRecord, type CurrentRecord } from "./record-writes.js";
import { isJsonContentType, normaliseContentType } from "./stream-record.js";

/**
 * Group commit for plain appends (no producer, Stream-Seq or close). Appends
 * to one stream are serialised (validate, store, commit the record), so one
 * at a time a busy stream would cost four round trips per append; instead,
 * the plain appends that arrive while one batch is being stored go together
 * as the next one: one message, one record commit. Each POST answers with
 * the tail after the batch, which includes its data; its bytes (or JSON
 * values) are contiguous and in arrival order.
 */

export interface PlainAppend {
  /** Who appends: decides, for an agent stream, which events it may store. */
  writer: Writer;
  contentType: string;
  /** What this append stores: the body's bytes, or for JSON its values as compact JSON without brackets. */
  data: Buffer;
  /** The body's values when its content type is JSON (parsed and encoded before queueing, so bad JSON is refused at once). */
  values: unknown[] | undefined;
}

interface Pending extends PlainAppend {
  resolve(tail: number): void;
  reject(err: unknown): void;
}

export class AppendBatcher {
  private readonly queues = new Map<StreamPath, Pending[]>();

  /** Append and resolve with the stream's tail after it. */
  append(deps: DurableDeps, path: StreamPath, append: PlainAppend): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const queue = this.queues.get(path);
      const pending = { ...append, resolve, reject };
      if (queue !== undefined) {
        queue.push(pending);
        return;
      }
      this.queues.set(path, [pending]);
      // Waits behind whatever holds the path (a batch being stored, a producer append, a create); what
      // arrives meanwhile joins this queue.
      void deps.store.locks.run(path, () => this.drain(deps, path));
    });
  }

  private async drain(deps: DurableDeps, path: StreamPath): Promise<void> {
    const queue = this.queues.get(path) ?? [];
    this.queues.delete(path);
    const limit = maxMessageBytes(deps.nats);
    while (queue.length > 0) {
      // As many as fit in one message (counting a JSON array's brackets and commas); one that does not fit
      // alone goes alone, and is refused as too large.
      let bytes = 2;
      let count = 0;
      while (count < queue.length && (count === 0 || bytes + (queue[count]?.data.byteLength ?? 0) + 1 <= limit)) bytes += (queue[count++]?.data.byteLength ?? 0) + 1;
      const batch = queue.splice(0, count);
      try {
        await this.store(deps, path, batch);
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
  }

  private async store(deps: DurableDeps, path: StreamPath, batch: Pending[]): Promise<void> {
    await writeToCurrentRecord(deps, path, {
      onAgentStream: async () => {
        for (const p of batch) {
          await appendToAgentStream(deps, p.writer, path, p.contentType, p.values).then(
            (tail) => { p.resolve(tail); },
            (err: unknown) => { p.reject(err); },
          );
        }
      },
      onRecord: (found, expectLastSeq) => this.storeOnRecord(deps, path, batch, found, expectLastSeq),
    });
  }

  private async storeOnRecord(deps: DurableDeps, path: StreamPath, batch: Pending[], found: CurrentRecord, expectLastSeq: number): Promise<void> {
    const { record } = found;
    if (record.closed) throw closedConflict(record);
    const jsonMode = isJsonContentType(record.contentType);
    const accepted: Pending[] = [];
    for (const p of batch) {
      if (!p.writer.may("append", path)) {
        p.reject(forbidden(p.writer, "append", path));
      } else if (normaliseContentType(p.contentType) !== normaliseContentType(record.contentType)) {
        p.reject(contentTypeConflict(record, p.contentType));
      } else accepted.push(p);
    }
    if (accepted.length === 0) return;
    const data = jsonMode ? Buffer.from(`[${accepted.map((p) => p.data.toString("utf8")).join(",")}]`) : Buffer.concat(accepted.map((p) => p.data));

    const committed = await storeAndCommit(deps, path, found, data, { expectLastSeq }, (r, seq, now) => ({
      ...r,
      lastAccessMs: Math.max(r.lastAccessMs, now),
      ownLastSeq: Math.max(r.ownLastSeq, seq),
      tailSeq: Math.max(r.tailSeq, seq),
    }));
    for (const p of accepted) p.resolve(committed.tailSeq);
  }
}
