import type { JsMsg, StoredMsg } from "@nats-io/jetstream";
import { decodeStoredEvent, type DecodedEvent, type EventEnvelope } from "../contract/envelope.js";
import { AgentmeshError } from "../contract/errors.js";
import { natsFailure, type Nats } from "../nats/connection.js";
import { eachLasting, openOrdered, readLasting } from "../nats/lasting-consumer.js";
import { eventsSubject, pathOfSubject, type StreamPath } from "../contract/subjects.js";

/**
 * Reading stored events: decoding them, direct gets of one event or a few, and
 * ordered JetStream consumers rewound to an offset or a time, filtered to one
 * subject or a subtree wildcard, deleted as soon as the read ends. Paging for
 * HTTP clients is the gateway's (gateway/reads/read-page.ts).
 */

/** Messages the server pushes per pull: large enough for catch-up, small enough to stop early cheaply. */
const CONSUME_BATCH = 1000;

/** The last subject decoded and its path: a read of one stream decodes the same subject for every event. */
let lastSubject = "";
let lastPath = "/" as StreamPath;

function pathFromSubject(subject: string): StreamPath {
  if (subject === lastSubject) return lastPath;
  // Every subject in the stream is ours; one written by a foreign writer with
  // tokens we would not produce is still shown, under its tokens percent-encoded
  // (a token may hold any character but `.`, and envelopes splice the path into JSON unescaped).
  lastPath = pathOfSubject(subject) ?? (("/" + subject.split(".").slice(1).map(encodeURIComponent).join("/")) as StreamPath);
  lastSubject = subject;
  return lastPath;
}

function isoFromNanos(nanos: number): string {
  return new Date(Math.floor(nanos / 1e6)).toISOString();
}

export function decodeJsMsg(m: JsMsg): DecodedEvent {
  return decodeStoredEvent(pathFromSubject(m.subject), m.seq, () => isoFromNanos(m.info.timestampNanos), m.data);
}

export function decodeStoredMsg(m: StoredMsg): DecodedEvent {
  return decodeStoredEvent(pathFromSubject(m.subject), m.seq, m.time.toISOString(), m.data);
}

/** The event stored at an offset, whatever stream it belongs to; null if there is none. */
export async function getEvent(nats: Nats, offset: number): Promise<EventEnvelope | null> {
  try {
    const m = await nats.jsm.direct.getMessage(nats.streamName, { seq: offset });
    return m === null ? null : decodeStoredMsg(m).envelope;
  } catch (err) {
    throw natsFailure(err);
  }
}

/**
 * Who answers a read: `replica`, any server holding a copy (a direct get, the cheap default, which a replica behind
 * the leader may answer with less); `leader`, the stream's leader, which has every acknowledged append. What a client
 * is told the end of a stream is comes from the leader, so that a client never reads less than it wrote or was shown
 * (docs/ARCHITECTURE.md, "Failure behaviour").
 */
export type ReadFrom = "replica" | "leader";

/** The last stored message matching a subject filter (wildcards allowed), or null. */
export async function lastMessage(nats: Nats, filter: string, from: ReadFrom = "replica"): Promise<StoredMsg | null> {
  if (!nats.isConnected()) throw new AgentmeshError("NATS_UNAVAILABLE");
  try {
    if (from === "leader") return await nats.jsm.streams.getMessage(nats.streamName, { last_by_subj: filter });
    return await nats.jsm.direct.getMessage(nats.streamName, { last_by_subj: filter });
  } catch (err) {
    throw natsFailure(err);
  }
}

/** A stream's last offset; 0 when it has no events. */
export async function lastOffset(nats: Nats, path: StreamPath, from: ReadFrom = "replica"): Promise<number> {
  return (await lastMessage(nats, eventsSubject(path), from))?.seq ?? 0;
}

/**
 * Iterate stored messages matching `filter` from `from` (a sequence, inclusive,
 * or the first stored at or after a time), in order, until the consumer has
 * nothing pending or a message's sequence exceeds `until`, going on after a
 * reconnect or the loss of the consumer's server (shared/nats/lasting-consumer.ts).
 * The caller must know at least one matching message exists at or after `from`,
 * or the iteration would wait for one.
 */
export function readMessages(nats: Nats, filter: string, from: number | Date, until = Number.POSITIVE_INFINITY): AsyncGenerator<JsMsg, void> {
  return readLasting(nats, { stream: nats.streamName, filter, from, until, batch: CONSUME_BATCH });
}

/** An ordered consumer of `filter` from a sequence (inclusive) or a time, already pulling `batch` messages at a time; the caller stops and deletes it. */
export function openOrderedRead(nats: Nats, filter: string, from: number | Date, batch = CONSUME_BATCH): ReturnType<typeof openOrdered> {
  return openOrdered(nats, nats.streamName, filter, from, { max_messages: batch });
}

/** One stored message as the readers of `readFew` see it, whichever way it was fetched. */
export interface FetchedMsg {
  seq: number;
  data: Uint8Array;
  decode(): DecodedEvent;
}

async function nextStored(nats: Nats, subject: string, from: number): Promise<StoredMsg | null> {
  try {
    return await nats.jsm.direct.getMessage(nats.streamName, { seq: from, next_by_subj: subject });
  } catch (err) {
    throw natsFailure(err);
  }
}

/**
 * A replica that has nothing at or after `from` although `until` (known to be stored: a bound the leader gave) is
 * not passed yet is behind the leader by a moment: asked again after these delays before the read ends short.
 */
const BEHIND_RETRIES_MS = [5, 20, 50, 100, 200, 400];

async function nextStoredUpTo(nats: Nats, subject: string, from: number, until: number): Promise<StoredMsg | null> {
  for (let attempt = 0; ; attempt++) {
    const m = await nextStored(nats, subject, from);
    const wait = BEHIND_RETRIES_MS[attempt];
    if (m !== null || !Number.isFinite(until) || wait === undefined) return m;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** The first message of one subject at or after a sequence, by direct get; null if there is none yet. */
export async function nextMessage(nats: Nats, subject: string, from: number): Promise<FetchedMsg | null> {
  const m = await nextStored(nats, subject, from);
  return m === null ? null : { seq: m.seq, data: m.data, decode: () => decodeStoredMsg(m) };
}

/** Direct gets before a read switches to a consumer: a live read usually wants one or two messages. */
const DIRECT_GETS_FIRST = 8;

/**
 * readMessages for reads that are usually short (a live reader woken by one
 * append): the first messages come by direct get, one request each, and only
 * a read that goes on switches to a consumer, whose creation costs several
 * round trips. `subject` is one subject, no wildcards; stops after `until`.
 */
export async function* readFew(nats: Nats, subject: string, from: number, until: number): AsyncGenerator<FetchedMsg> {
  let next = from;
  for (let fetched = 0; next <= until; fetched++) {
    const m = await nextStoredUpTo(nats, subject, next, until);
    if (m === null || m.seq > until) return;
    if (fetched === DIRECT_GETS_FIRST) {
      // A message exists at m.seq, as readMessages requires.
      for await (const c of readMessages(nats, subject, m.seq, until)) yield { seq: c.seq, data: c.data, decode: () => decodeJsMsg(c) };
      return;
    }
    const stored = m;
    yield { seq: stored.seq, data: stored.data, decode: () => decodeStoredMsg(stored) };
    next = stored.seq + 1;
  }
}

/**
 * readFew with a callback, decoded: the few first events by direct get, the rest (a long catch-up) through
 * eachLasting. `subject` is one subject; stops after `until`.
 */
export async function eachFewEvents(nats: Nats, subject: string, from: number, until: number, onEvent: (event: DecodedEvent) => void): Promise<void> {
  let next = from;
  for (let fetched = 0; next <= until; fetched++) {
    const m = await nextStoredUpTo(nats, subject, next, until);
    if (m === null || m.seq > until) return;
    if (fetched === DIRECT_GETS_FIRST) {
      // A message exists at m.seq, as eachLasting requires.
      await eachLasting(nats, { stream: nats.streamName, filter: subject, from: m.seq, until, batch: CONSUME_BATCH }, (c) => { onEvent(decodeJsMsg(c)); });
      return;
    }
    onEvent(decodeStoredMsg(m));
    next = m.seq + 1;
  }
}

/** readMessages, decoded as events. */
export async function* readRange(nats: Nats, filter: string, from: number | Date, until = Number.POSITIVE_INFINITY): AsyncGenerator<DecodedEvent> {
  for await (const m of readMessages(nats, filter, from, until)) yield decodeJsMsg(m);
}
