import { setTimeout as sleep } from "node:timers/promises";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { lastMessage } from "../../shared/log/read.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import type { DurableDeps } from "./protocol-context.js";
import { AppendRace, ownSubject, publishMessage } from "./stream-log.js";
import { publishChange } from "./change-notice.js";
import type { DurableStreamRecord } from "./stream-record.js";

/**
 * The loop every write to a durable stream's data runs in (under the path's
 * lock): find the stream, write against its current record, and when another
 * writer got there first (AppendRace), read again and decide again.
 */

export interface CurrentRecord {
  record: DurableStreamRecord;
  revision: number;
}

export interface RecordWriter<T> {
  /** Store against this record; publish with `expectLastSeq` as the subject's last sequence. */
  onRecord(found: CurrentRecord, expectLastSeq: number): Promise<T>;
  /** The path is an agent event stream. */
  onAgentStream(): Promise<T>;
}

/**
 * How long the subject may stay ahead of the committed tail before its extra
 * messages are taken as orphans: stored by an append whose commit never
 * happened (its gateway died, or NATS failed it with a 503). A live writer
 * commits within its NATS request timeouts, far sooner. An orphan becomes
 * readable with the next append, as a write whose outcome its client was
 * told is unknown may.
 */
const ORPHAN_GRACE_MS = 3000;
const RACE_RETRY_MS = 10;
/** A write that has raced this long (other replicas winning every time) is answered 503 rather than held. */
const GIVE_UP_MS = 15_000;

async function subjectTail(deps: DurableDeps, record: DurableStreamRecord): Promise<number> {
  return Math.max(record.ownLastSeq, (await lastMessage(deps.nats, ownSubject(record.id)))?.seq ?? 0);
}

export async function writeToCurrentRecord<T>(deps: DurableDeps, path: StreamPath, writer: RecordWriter<T>): Promise<T> {
  const started = performance.now();
  // Since when the subject has been ahead of this committed tail; other record changes (TTL touches) do not count.
  let race: { tail: string; since: number } | undefined;
  for (;;) {
    const found = await deps.store.lookup(path);
    if (found.kind === "absent") throw new AgentmeshError("STREAM_NOT_FOUND", `No stream at ${path}`);
    if (found.kind === "gone") throw new AgentmeshError("STREAM_GONE");
    if (found.kind === "agent") return writer.onAgentStream();
    const tail = `${found.record.id}:${found.record.ownLastSeq}`;
    const orphaned = race?.tail === tail && performance.now() - race.since > ORPHAN_GRACE_MS;
    try {
      return await writer.onRecord(found, orphaned ? await subjectTail(deps, found.record) : found.record.ownLastSeq);
    } catch (err) {
      // Another writer appended between our read and our write: decide again on what it committed.
      if (!(err instanceof AppendRace)) throw err;
      if (performance.now() - started > GIVE_UP_MS) throw new AgentmeshError("NATS_UNAVAILABLE", `Appends to ${path} kept racing for ${GIVE_UP_MS / 1000} s; retry`);
      if (race?.tail !== tail) race = { tail, since: performance.now() };
      await sleep(RACE_RETRY_MS);
    }
  }
}

/**
 * The two steps of every write to a durable stream's data: store the message
 * (expecting `expectLastSeq` as the subject's last sequence, so a writer that
 * decided on an older state loses), then commit `change` to the record, and
 * wake the stream's live readers. Readers see nothing before the commit.
 */
export async function storeAndCommit(
  deps: DurableDeps,
  path: StreamPath,
  found: CurrentRecord,
  data: Uint8Array,
  options: { expectLastSeq: number; msgId?: string },
  change: (record: DurableStreamRecord, storedSeq: number, now: number) => DurableStreamRecord,
): Promise<DurableStreamRecord> {
  const { id } = found.record;
  const { seq, duplicate } = await publishMessage(deps.nats, ownSubject(id), data, options);
  const now = Date.now();
  const committed = await deps.store.update(path, (r) => (r.id === id ? change(r, seq, now) : r), found);
  if (committed?.id !== id) throw new AgentmeshError("STREAM_NOT_FOUND", `${path} was deleted during the append`);
  // A duplicate stored nothing now: its readers learn only that the record changed.
  publishChange(deps.nats, id, duplicate ? undefined : { record: committed, seq, prevSeq: options.expectLastSeq, data });
  return committed;
}
