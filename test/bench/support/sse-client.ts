import { request, type Agent } from "node:http";
import { createParser, type EventSourceMessage } from "eventsource-parser";

/**
 * A bare SSE reader over node:http: one socket per stream (no agent pooling,
 * so 1,000 readers really are 1,000 connections) and eventsource-parser for
 * the framing. Unlike test/support/sse.ts it keeps nothing: the caller's
 * `onEvent` runs synchronously on the chunk that completed the event, so a
 * timestamp taken there is the receipt time.
 */

export interface SseStream {
  readonly status: number;
  /** Settles when the connection closes, from either side. */
  readonly ended: Promise<void>;
  close(): void;
}

export function openSseStream(url: string, onEvent: (event: EventSourceMessage) => void, agent: Agent | false = false): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { accept: "text/event-stream" } }, (res) => {
      const parser = createParser({ onEvent });
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        parser.feed(chunk);
      });
      // Closing from our side surfaces as an "aborted" error; it is expected.
      res.on("error", () => undefined);
      const ended = new Promise<void>((done) => res.once("close", done));
      resolve({ status: res.statusCode ?? 0, ended, close: () => req.destroy() });
    });
    // Before the response this rejects; after it, the promise is settled and the error is moot.
    req.on("error", reject);
    req.end();
  });
}
