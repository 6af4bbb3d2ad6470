import { JetStreamApiError } from "@nats-io/jetstream";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { maxMessageBytes, natsFailure, type Nats } from "../../shared/nats/connection.js";
import { readFew } from "../../shared/log/read.js";
import { eventsSubject, type StreamPath } from "../../shared/contract/subjects.js";
import { JetStreamErrorCodes, SubjectRoots } from "../../shared/contract/wire.js";
import { chunkOf, chunkSize, type Chunk } from "./stream-content.js";
import { formatOf, type DurableStreamRecord, type InheritedSegment } from "./stream-record.js";

/**
 * Where a stream's data is, in order: what it inherited (forks), then its own
 * subject up to its tail. A reader needs nothing else, so reading a fork never
 * touches its source's record (or its TTL).
 */
export interface StreamView {
  segments: InheritedSegment[];
  tailSeq: number;
}

export function ownSubject(id: string): string {
  return `${SubjectRoots.durable}.${id}`;
}

/** Core NATS subject on which a durable stream's changes are announced to live readers. */
export function changesSubject(id: string): string {
  return `${SubjectRoots.durableChanges}.${id}`;
}

export function viewOfRecord(record: DurableStreamRecord): StreamView {
  const own: InheritedSegment = { subject: ownSubject(record.id), after: 0, through: record.ownLastSeq, format: formatOf(record.contentType) };
  return { segments: [...record.inherited, own], tailSeq: record.tailSeq };
}

export function viewOfAgentStream(path: StreamPath, tailSeq: number): StreamView {
  return { segments: [{ subject: eventsSubject(path), after: 0, through: tailSeq, format: "envelopes" }], tailSeq };
}

/** What a fork of `view` at `offset` inherits: each segment cut at the fork point. */
export function inheritedAt(view: StreamView, offset: number): InheritedSegment[] {
  return view.segments.filter((s) => s.through > s.after && s.after < offset).map((s) => ({ ...s, through: Math.min(s.through, offset) }));
}

export interface ReadResult {
  chunks: Chunk[];
  /** The offset after the returned data: the tail when the read reached it. */
  nextSeq: number;
  upToDate: boolean;
}

export interface ReadLimits {
  maxBytes: number;
  maxMessages: number;
}

/** The data after `afterSeq`, in order, up to the limits (always at least one message if there is one). */
export async function readView(nats: Nats, view: StreamView, afterSeq: number, limits: ReadLimits): Promise<ReadResult> {
  const chunks: Chunk[] = [];
  let bytes = 0;
  let cursor = afterSeq;
  for (const segment of view.segments) {
    if (segment.through <= Math.max(cursor, segment.after)) continue;
    const from = Math.max(cursor, segment.after) + 1;
    for await (const m of readFew(nats, segment.subject, from, segment.through)) {
      // An empty message is a close marker (append-stream.ts), not data; every data append has a body.
      if (segment.format !== "envelopes" && m.data.byteLength === 0) continue;
      const chunk = chunkOf(m.seq, segment.format, m.data, () => m.decode().json);
      chunks.push(chunk);
      cursor = m.seq;
      bytes += chunkSize(chunk);
      if (chunks.length >= limits.maxMessages || bytes >= limits.maxBytes) {
        const upToDate = cursor >= view.tailSeq;
        return { chunks, nextSeq: upToDate ? Math.max(cursor, view.tailSeq) : cursor, upToDate };
      }
    }
  }
  return { chunks, nextSeq: Math.max(afterSeq, view.tailSeq), upToDate: true };
}

/** Thrown when another writer appended first (JetStream's expected last sequence did not hold). */
export class AppendRace extends Error {}

/** Store one message on a durable stream's own subject; its sequence is the new tail. */
export async function publishMessage(nats: Nats, subject: string, data: Uint8Array, options: { expectLastSeq: number; msgId?: string }): Promise<{ seq: number; duplicate: boolean }> {
  if (!nats.isConnected()) throw new AgentmeshError("NATS_UNAVAILABLE");
  const maxBytes = maxMessageBytes(nats);
  if (data.byteLength > maxBytes) {
    throw new AgentmeshError("PAYLOAD_TOO_LARGE", `The body is ${data.byteLength} bytes; one append may be at most ${maxBytes} bytes (NATS max_payload)`);
  }
  try {
    const ack = await nats.publisher.publish(subject, data, {
      expectLastSubjectSequence: options.expectLastSeq,
      ...(options.msgId === undefined ? {} : { msgId: options.msgId }),
    });
    return { seq: ack.seq, duplicate: ack.duplicate };
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamErrorCodes.wrongLastSequence) throw new AppendRace();
    throw natsFailure(err);
  }
}
