import { AgentmeshError } from "../../shared/contract/errors.js";
import type { DecodedEvent } from "../../shared/contract/envelope.js";
import { selectorSubject, type StreamSelector } from "../../shared/contract/subjects.js";
import type { Nats } from "../../shared/nats/connection.js";
import { decodeJsMsg, lastMessage, readRange } from "../../shared/log/read.js";
import type { ReadCursors } from "./read-cursors.js";

/** A page of a stream or subtree for an HTTP reader, from an offset or a time. */

export interface ReadPage {
  events: DecodedEvent[];
  /** Pass as `after` to continue. */
  nextOffset: number;
  /** Nothing was left to read when the page was taken. */
  upToDate: boolean;
}

export type ReadStart = { after: number } | { at: Date };

/** Nanoseconds since the epoch of an RFC 3339 time with up to 9 fractional digits (JetStream's precision). */
function nanosOfIso(iso: string): bigint {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(iso);
  if (match === null) return BigInt(Date.parse(iso)) * 1_000_000n;
  const seconds = BigInt(Date.parse(`${match[1] ?? ""}${match[3] ?? "Z"}`)) * 1_000_000n;
  return seconds + BigInt((match[2] ?? "").padEnd(9, "0"));
}

/** A page read through a consumer kept from the previous page (read-cursors.ts), parked again if the stream goes on. */
async function readPageKept(cursors: ReadCursors, filter: string, from: number, until: number, limit: number): Promise<ReadPage> {
  const read = await cursors.open(filter, from, limit);
  const events: DecodedEvent[] = [];
  let nextOffset = from - 1;
  let upToDate = false;
  let ended = false;
  let parked = false;
  try {
    for (;;) {
      const m = await read.nextMessage();
      if (m === null) {
        // The consumer stopped (NATS trouble): answer what was read, and let the next page start afresh.
        if (events.length === 0) throw new AgentmeshError("NATS_UNAVAILABLE", "The read's consumer stopped");
        ended = true;
        break;
      }
      if (m.seq > until) {
        read.hold(m);
        upToDate = true;
        break;
      }
      events.push(decodeJsMsg(m));
      nextOffset = m.seq;
      if (m.seq >= until) upToDate = true;
      if (upToDate || events.length >= limit) break;
    }
    if (!upToDate && !ended) {
      read.from = nextOffset + 1;
      cursors.park(read);
      parked = true;
    }
  } finally {
    if (!parked) cursors.close(read);
  }
  return { events, nextOffset, upToDate };
}

/** One page of a stream (or subtree). A single stream with no events is STREAM_NOT_FOUND. `cursors`: keep consumers between pages. */
export async function readPage(nats: Nats, selector: StreamSelector, start: ReadStart, limit: number, cursors?: ReadCursors): Promise<ReadPage> {
  const filter = selectorSubject(selector, "events");
  const last = await lastMessage(nats, filter, "leader");
  if (last === null) {
    if (selector.kind === "stream") throw new AgentmeshError("STREAM_NOT_FOUND", `No stream at ${selector.path}`);
    return { events: [], nextOffset: "after" in start ? start.after : 0, upToDate: true };
  }
  let from: number | Date;
  if ("after" in start) {
    if (start.after >= last.seq) return { events: [], nextOffset: start.after, upToDate: true };
    from = start.after + 1;
  } else {
    // The consumer would wait for a future event; the last event's time says whether any lies at or after `at`.
    if (nanosOfIso(last.timestamp) < BigInt(start.at.getTime()) * 1_000_000n) return { events: [], nextOffset: last.seq, upToDate: true };
    from = start.at;
  }

  if (cursors !== undefined && typeof from === "number") return readPageKept(cursors, filter, from, last.seq, limit);
  const events: DecodedEvent[] = [];
  let nextOffset = typeof from === "number" ? from - 1 : 0;
  let upToDate = false;
  const atIso = "at" in start ? start.at.toISOString() : null;
  for await (const event of readRange(nats, filter, from, last.seq)) {
    nextOffset = event.offset;
    // Replay by time finds the start with NATS's storage time; the writer's own
    // createdAt can be a hair earlier, so leading events stamped before `at` are skipped.
    if (!(atIso !== null && events.length === 0 && event.envelope.createdAt < atIso)) events.push(event);
    if (event.offset >= last.seq) upToDate = true;
    if (events.length >= limit) break;
  }
  if (nextOffset >= last.seq) upToDate = true;
  return { events, nextOffset, upToDate };
}
