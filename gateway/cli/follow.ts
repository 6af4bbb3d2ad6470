import { setTimeout as sleep } from "node:timers/promises";
import { createParser } from "eventsource-parser";
import type { EphemeralEnvelope, EventEnvelope } from "../../shared/contract/envelope.js";
import { CliError, errorOf, headers, streamUrl, type Target } from "./http.js";

export type LiveEvent = EventEnvelope | EphemeralEnvelope;

export interface FollowOptions {
  target: Target;
  /** A stream path, or `<prefix>/**`. */
  selector: string;
  /** Start after this offset (0: the whole history), or at a time: only for the first connection. */
  start: { after: number } | { at: string };
  onEvent: (event: LiveEvent) => void;
  /** Told each time the connection is lost and about to be made again. */
  onReconnect?: (attempt: number, why: string) => void;
  signal: AbortSignal;
}

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5_000;

/**
 * History, then live, over the gateway's SSE, for as long as `signal` allows: a lost connection is made again
 * with `Last-Event-ID` (the last stored offset seen), so nothing is missed and nothing repeated; a repeat the
 * server sends anyway is dropped by offset. Refusals (401, 403, 400) end it with the gateway's error.
 */
export async function follow(options: FollowOptions): Promise<void> {
  let lastOffset: number | null = "after" in options.start ? options.start.after : null;
  // A function: read after awaits, where the compiler would take the loop's own check for the last word.
  const stopped = (): boolean => options.signal.aborted;
  for (let attempt = 0; !stopped(); ) {
    let why: string;
    try {
      const query = new URLSearchParams({ live: "sse" });
      if (lastOffset === null && "at" in options.start) query.set("at", options.start.at);
      else query.set("after", String(lastOffset ?? 0));
      const extra: Record<string, string> = { accept: "text/event-stream" };
      if (lastOffset !== null && attempt > 0) extra["last-event-id"] = String(lastOffset);
      const response = await fetch(new URL(`${streamUrl(options.selector)}?${query.toString()}`, options.target.url), { headers: headers(options.target, extra), signal: options.signal });
      if (!response.ok) {
        const error = await errorOf(response);
        if (response.status >= 400 && response.status < 500 && response.status !== 429) throw error;
        why = `${error.code}: ${error.message}`;
      } else if (response.body === null) {
        why = "the gateway sent no body";
      } else {
        attempt = 0;
        const parser = createParser({
          onEvent: (message) => {
            const event = JSON.parse(message.data) as LiveEvent;
            if ("offset" in event) {
              if (lastOffset !== null && event.offset <= lastOffset) return;
              lastOffset = event.offset;
            }
            options.onEvent(event);
          },
        });
        for await (const chunk of response.body.pipeThrough(new TextDecoderStream())) parser.feed(chunk);
        why = "the gateway closed the stream";
      }
    } catch (err) {
      if (stopped()) return;
      if (err instanceof CliError) throw err;
      why = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    }
    if (stopped()) return;
    attempt++;
    options.onReconnect?.(attempt, why);
    await sleep(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (attempt - 1)), undefined, { signal: options.signal }).catch(() => undefined);
  }
}
