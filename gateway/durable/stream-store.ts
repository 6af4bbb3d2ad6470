import { Kvm, type KV } from "@nats-io/kv";
import { AgentmeshError } from "../../shared/contract/errors.js";
import type { Logger } from "../../shared/service/logger.js";
import { isCompareAndSetConflict, natsFailure, type Nats } from "../../shared/nats/connection.js";
import { lastMessage } from "../../shared/log/read.js";
import { eventsSubject, kvKeyOf, pathOfKvKey, type StreamPath } from "../../shared/contract/subjects.js";
import { KvBuckets } from "../../shared/contract/wire.js";
import { KeyedMutex } from "./path-lock.js";
import { DurableStreamRecordSchema, isExpired, type DurableStreamRecord } from "./stream-record.js";

/** What is at a path, as the protocol sees it. */
export type StreamLookup =
  | { kind: "absent" }
  /** Deleted (or expired) while forks still read its data: 410 for everything but fork reads. */
  | { kind: "gone"; record: DurableStreamRecord }
  | { kind: "durable"; record: DurableStreamRecord; revision: number }
  /** No durable stream, but agent events: the stream reads as their envelopes, in JSON mode. */
  | { kind: "agent"; tailSeq: number };

const CAS_ATTEMPTS = 20;


/**
 * The durable streams' records in KV, with the lineage rules: a deleted or
 * expired stream that forks still read is kept, marked deleted, until its
 * last fork goes; then it is removed, and so on up the chain.
 */
export class DurableStreamStore {
  readonly locks = new KeyedMutex();
  private kvPromise: Promise<KV> | undefined;

  constructor(
    private readonly nats: Nats,
    private readonly logger: Logger,
    private readonly replicas: number,
  ) {}

  private async kv(): Promise<KV> {
    this.kvPromise ??= new Kvm(this.nats.js).create(KvBuckets.durableStreams, { history: 1, replicas: this.replicas });
    try {
      return await this.kvPromise;
    } catch (err) {
      this.kvPromise = undefined;
      throw natsFailure(err);
    }
  }

  /** Make sure the bucket exists (the subscriptions' change feed is a consumer on its stream). */
  async ready(): Promise<void> {
    await this.kv();
  }

  /** Every stream path with a record (a subscription's glob matches them when it is made). */
  async paths(): Promise<StreamPath[]> {
    const kv = await this.kv();
    const paths: StreamPath[] = [];
    try {
      for await (const key of await kv.keys()) {
        const path = pathOfKvKey(key);
        if (path !== null) paths.push(path);
      }
    } catch (err) {
      throw natsFailure(err);
    }
    return paths;
  }

  private async entry(path: StreamPath): Promise<{ record: DurableStreamRecord; revision: number } | null> {
    if (!this.nats.isConnected()) throw new AgentmeshError("NATS_UNAVAILABLE");
    const kv = await this.kv();
    const entry = await kv.get(kvKeyOf(path)).catch((err: unknown) => {
      throw natsFailure(err);
    });
    if (entry === null || entry.operation !== "PUT") return null;
    const parsed = DurableStreamRecordSchema.safeParse(entry.json());
    if (!parsed.success) throw new AgentmeshError("INTERNAL", `The record of ${path} is not readable`, { cause: parsed.error });
    return { record: parsed.data, revision: entry.revision };
  }

  /** Resolve a path, applying expiry and lineage rules on the way (lazily: no sweeper is needed for correctness). */
  async lookup(path: StreamPath): Promise<StreamLookup> {
    const found = await this.entry(path);
    if (found === null) {
      const last = await lastMessage(this.nats, eventsSubject(path));
      return last === null ? { kind: "absent" } : { kind: "agent", tailSeq: last.seq };
    }
    let { record } = found;
    const expired = isExpired(record, Date.now());
    if (!record.deleted && !expired) return { kind: "durable", record, revision: found.revision };
    if (record.forks.length > 0) record = await this.pruneForks(path, record);
    if (record.forks.length === 0) {
      await this.purge(path, record);
      return { kind: "absent" };
    }
    if (!record.deleted) record = (await this.update(path, (r) => ({ ...r, deleted: true }))) ?? record;
    return { kind: "gone", record };
  }

  /** Store the record of a new stream; false if another request created one first. */
  async create(path: StreamPath, record: DurableStreamRecord): Promise<boolean> {
    const kv = await this.kv();
    try {
      await kv.create(kvKeyOf(path), JSON.stringify(record));
      return true;
    } catch (err) {
      if (isCompareAndSetConflict(err)) return false;
      throw natsFailure(err);
    }
  }

  /**
   * Apply a change with compare-and-set, reading again if another request (or
   * replica) wrote in between. `change` must be safe to re-apply to a newer
   * record. Null if the stream no longer exists. `known`: the record and
   * revision the caller read, to try first.
   */
  async update(path: StreamPath, change: (record: DurableStreamRecord) => DurableStreamRecord, known?: { record: DurableStreamRecord; revision: number }): Promise<DurableStreamRecord | null> {
    const kv = await this.kv();
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      // A caller that just read the record saves a read; if it has changed since, the CAS fails and we read again.
      const found = attempt === 0 && known !== undefined ? known : await this.entry(path);
      if (found === null) return null;
      const next = change(found.record);
      if (next === found.record) return next;
      try {
        await kv.update(kvKeyOf(path), JSON.stringify(next), found.revision);
        return next;
      } catch (err) {
        if (!isCompareAndSetConflict(err)) throw natsFailure(err);
      }
    }
    throw new AgentmeshError("INTERNAL", `The record of ${path} kept changing under ${CAS_ATTEMPTS} attempts to update it`);
  }

  /** Renew the sliding TTL window (GET and POST do; HEAD does not). */
  async touch(path: StreamPath, record: DurableStreamRecord): Promise<void> {
    if (record.ttl === undefined) return;
    const now = Date.now();
    // A write per read is wasteful; a twentieth of the window is precise enough.
    if (now - record.lastAccessMs < (Number(record.ttl) * 1000) / 20) return;
    await this.update(path, (r) => (r.id === record.id ? { ...r, lastAccessMs: Math.max(r.lastAccessMs, now) } : r));
  }

  /** Delete: removed now, or kept as deleted while forks read it. */
  async delete(path: StreamPath, record: DurableStreamRecord): Promise<void> {
    const pruned = record.forks.length > 0 ? await this.pruneForks(path, record) : record;
    if (pruned.forks.length === 0) await this.purge(path, pruned);
    else await this.update(path, (r) => (r.id === record.id ? { ...r, deleted: true } : r));
  }

  /** Remove a record for good and let go of its source, which may then go too. */
  private async purge(path: StreamPath, record: DurableStreamRecord): Promise<void> {
    const current = await this.entry(path);
    if (current?.record.id !== record.id) return;
    if (!(await this.remove(path, current.record, current.revision))) return;
    if (record.fork !== undefined) await this.release(record.fork.from as StreamPath, path, record.id);
  }

  /** Delete a record if it is still at `revision`; false if another request changed it first. */
  private async remove(path: StreamPath, record: DurableStreamRecord, revision: number): Promise<boolean> {
    const kv = await this.kv();
    try {
      await kv.delete(kvKeyOf(path), { previousSeq: revision });
    } catch (err) {
      if (isCompareAndSetConflict(err)) return false;
      throw natsFailure(err);
    }
    // Its messages stay on durable.<id>: the events stream denies purges, so what was stored is never erased
    // (docs/EVENTS.md, "Durable Streams"); with the record gone nothing can reach them through the protocol.
    this.logger.debug({ path, id: record.id }, "durable stream removed");
    return true;
  }

  /** A fork went away: its source no longer holds for it, and a deleted source with no forks left goes too. */
  private async release(sourcePath: StreamPath, forkPath: StreamPath, forkId: string): Promise<void> {
    await this.locks.run(sourcePath, async () => {
      const updated = await this.update(sourcePath, (r) => {
        const forks = r.forks.filter((f) => !(f === `${forkPath}#${forkId}`));
        return forks.length === r.forks.length ? r : { ...r, forks };
      });
      if (updated !== null && updated.forks.length === 0 && (updated.deleted || isExpired(updated, Date.now()))) await this.purge(sourcePath, updated);
    });
  }

  /** Take a reference on a source for a new fork (under the source's lock, by the caller). */
  async addFork(sourcePath: StreamPath, sourceId: string, forkPath: StreamPath, forkId: string): Promise<boolean> {
    const updated = await this.update(sourcePath, (r) => (r.id === sourceId && !r.deleted ? { ...r, forks: [...r.forks, `${forkPath}#${forkId}`] } : r));
    return updated?.id === sourceId && updated.forks.includes(`${forkPath}#${forkId}`);
  }

  /** Drop references held by forks that have since expired (and have no forks of their own). */
  private async pruneForks(path: StreamPath, record: DurableStreamRecord): Promise<DurableStreamRecord> {
    const dead: string[] = [];
    for (const ref of record.forks) {
      const [forkPath, forkId] = ref.split("#") as [StreamPath, string];
      const fork = await this.entry(forkPath);
      if (fork === null || fork.record.id !== forkId) {
        dead.push(ref);
        continue;
      }
      const forkRecord = fork.record;
      if ((forkRecord.deleted || isExpired(forkRecord, Date.now())) && (await this.pruneForks(forkPath, forkRecord)).forks.length === 0) {
        await this.remove(forkPath, forkRecord, fork.revision).catch(() => false);
        dead.push(ref);
      }
    }
    if (dead.length === 0) return record;
    return (await this.update(path, (r) => ({ ...r, forks: r.forks.filter((f) => !dead.includes(f)) }))) ?? { ...record, forks: [] };
  }
}
