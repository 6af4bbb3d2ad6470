import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { DecodedEvent } from "../../shared/contract/envelope.js";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { eventsSubject, type StreamPath } from "../../shared/contract/subjects.js";
import { eachFewEvents, lastOffset } from "../../shared/log/read.js";
import type { Nats } from "../../shared/nats/connection.js";
import { readPage } from "../reads/read-page.js";

/** Events `read-events` gives when the call names no limit: enough for a few turns, small enough for a model's context. */
export const DEFAULT_READ_EVENTS = 50;

/** What a page of `read-events` holds: the HTTP read's page (`GET /streams/<path>`), as JSON text and as objects. */
export interface EventsPage {
  events: DecodedEvent[];
  /** Pass as `after` to continue. */
  nextOffset: number;
  upToDate: boolean;
}

/**
 * The last `want` events of a stream. Reads go forward only and a stream's offsets are sparse (they are the log's
 * sequence, shared by every stream), so it reads the window `(last - span, last]`, then the window before it, four
 * times wider, until it holds enough or reaches the start (the console's `eventsBefore` does the same over HTTP). A
 * window is read by direct gets while it holds a few events, by a short-lived consumer beyond (shared/log/read.ts).
 */
export async function recentEvents(nats: Nats, path: StreamPath, want: number): Promise<EventsPage> {
  const last = await lastOffset(nats, path, "leader");
  if (last === 0) throw new AgentmeshError("STREAM_NOT_FOUND", `No stream at ${path}`);
  const subject = eventsSubject(path);
  let kept: DecodedEvent[] = [];
  let upper = last;
  for (let span = want * 2; ; span *= 4) {
    const after = Math.max(0, last - span);
    const window: DecodedEvent[] = [];
    await eachFewEvents(nats, subject, after + 1, upper, (event) => {
      window.push(event);
    });
    // The window is older than what was kept: it goes before it.
    kept = [...window.slice(-want), ...kept].slice(-want);
    upper = after;
    if (kept.length >= want || after === 0) return { events: kept, nextOffset: last, upToDate: true };
  }
}

/** `read-events`: a page after an offset (as `GET /streams/<path>?after=`), or without one the most recent events. */
export async function readEvents(nats: Nats, path: StreamPath, options: { after?: number | undefined; limit: number }): Promise<EventsPage> {
  if (options.after === undefined) return recentEvents(nats, path, options.limit);
  return readPage(nats, { kind: "stream", path }, { after: options.after }, options.limit);
}

/** The page as a tool result: JSON text built from the stored envelopes' own text, the same page as objects. */
export function eventsResult(page: EventsPage): CallToolResult {
  const text = `{"events":[${page.events.map((event) => event.json).join(",")}],"nextOffset":${page.nextOffset},"upToDate":${page.upToDate}}`;
  return { content: [{ type: "text", text }], structuredContent: { events: page.events.map((event) => event.envelope), nextOffset: page.nextOffset, upToDate: page.upToDate } };
}
