import { headers as natsHeaders, type Msg } from "@nats-io/transport-node";
import type { Nats } from "../../shared/nats/connection.js";
import { DurableStreamRecordSchema, type DurableStreamRecord } from "./stream-record.js";
import { changesSubject } from "./stream-log.js";

/**
 * What a committed append tells the stream's live readers on `durable-changes.<id>`: the record as committed, the
 * sequence of the message it stored and, when small, that message's bytes. A reader waiting at the tail can then
 * answer from the notice alone, without reading the record and the message back (two round trips to NATS). A
 * notice is a hint, never the truth: anything it cannot vouch for is read from the record and the stream. Only the
 * gateway's NATS user may publish on these subjects (deploy/nats/permissions.conf), as on the data's own.
 */
export interface ChangeNotice {
  record: DurableStreamRecord;
  seq: number;
  /** The subject's last sequence the message was stored after (its expected last sequence): nothing lies between. */
  prevSeq: number;
  /** The stored message's bytes; null when it was too large to repeat here. */
  data: Uint8Array | null;
}

/** Messages larger than this are read back by the readers instead. */
const INLINE_MAX_BYTES = 64 * 1024;
const RECORD_HEADER = "Agentmesh-Record";
const SEQ_HEADER = "Agentmesh-Seq";
const PREV_SEQ_HEADER = "Agentmesh-Prev-Seq";
const INLINE_HEADER = "Agentmesh-Inline";

/** Room left in a NATS message for the notice's other headers and the protocol line. */
const HEADROOM_BYTES = 1024;

/**
 * Tell live readers that the stream changed; with a committed append, what it stored. Never throws: the append it
 * follows is committed, and a reader that gets a bare signal (or none, if NATS is gone) reads the stream itself.
 */
export function publishChange(nats: Nats, id: string, committed?: { record: DurableStreamRecord; seq: number; prevSeq: number; data: Uint8Array }): void {
  const subject = changesSubject(id);
  try {
    const notice = committed === undefined ? null : noticeMessage(nats, committed);
    if (notice === null) nats.nc.publish(subject);
    else nats.nc.publish(subject, notice.data, { headers: notice.headers });
  } catch {
    try {
      nats.nc.publish(subject);
    } catch {
      // NATS is gone: readers wake on their timeout and read the stream.
    }
  }
}

function noticeMessage(nats: Nats, committed: { record: DurableStreamRecord; seq: number; prevSeq: number; data: Uint8Array }): { headers: ReturnType<typeof natsHeaders>; data: Uint8Array | undefined } | null {
  const record = JSON.stringify(committed.record);
  // The record goes in a header: a record too large to fit beside a body (a long list of forks or producers)
  // sends a bare signal, and a body too large beside the record stays out of the notice.
  const room = (nats.nc.info?.max_payload ?? 0) - Buffer.byteLength(record) - HEADROOM_BYTES;
  if (room <= 0) return null;
  const inline = committed.data.byteLength <= Math.min(INLINE_MAX_BYTES, room);
  const h = natsHeaders();
  h.set(RECORD_HEADER, record);
  h.set(SEQ_HEADER, String(committed.seq));
  h.set(PREV_SEQ_HEADER, String(committed.prevSeq));
  h.set(INLINE_HEADER, inline ? "1" : "0");
  return { headers: h, data: inline ? committed.data : undefined };
}

/** The notice a change message carries, or null for a bare signal or anything malformed. */
export function readChange(msg: Msg): ChangeNotice | null {
  const h = msg.headers;
  if (h === undefined) return null;
  const seq = Number(h.get(SEQ_HEADER));
  const prevSeq = Number(h.get(PREV_SEQ_HEADER));
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(prevSeq) || prevSeq < 0 || seq <= prevSeq) return null;
  let record: DurableStreamRecord;
  try {
    const parsed = DurableStreamRecordSchema.safeParse(JSON.parse(h.get(RECORD_HEADER)));
    if (!parsed.success) return null;
    record = parsed.data;
  } catch {
    return null;
  }
  return { record, seq, prevSeq, data: h.get(INLINE_HEADER) === "1" ? msg.data : null };
}
