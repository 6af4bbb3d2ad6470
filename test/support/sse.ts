import { createParser, type EventSourceMessage } from "eventsource-parser";

export interface SseMessage {
  id: string | undefined;
  data: unknown;
}

export interface SseConnection {
  readonly messages: SseMessage[];
  /** SSE comments (`: ...` lines) such as heartbeats. */
  readonly comments: string[];
  /** Resolves once `predicate` holds for the messages received so far. */
  waitFor(predicate: (messages: SseMessage[]) => boolean, timeoutMs?: number): Promise<SseMessage[]>;
  /** Drop the connection from the client side, as a flaky network would. */
  abort(): void;
  /** Settles when the server ends the stream. */
  readonly ended: Promise<void>;
  readonly status: number;
}

/** A plain fetch-based SSE reader (eventsource-parser does the parsing) that records every message. */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseConnection> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: controller.signal });
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  const parser = createParser({
    onEvent: (event: EventSourceMessage) => {
      messages.push({ id: event.id, data: JSON.parse(event.data) });
      for (const wake of waiters) wake();
    },
    onComment: (comment: string) => {
      comments.push(comment.trim());
      for (const wake of waiters) wake();
    },
  });
  const body = response.body as ReadableStream<Uint8Array> | null;
  const ended = (async () => {
    if (body === null) return;
    const decoder = new TextDecoder();
    try {
      const reader = body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // Aborted by the test or cut by the server: either way the stream is over.
    }
  })();
  return {
    messages,
    comments,
    status: response.status,
    ended,
    abort: () => {
      controller.abort();
    },
    waitFor: (predicate, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (predicate(messages)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(messages);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`SSE condition not met within ${timeoutMs} ms; got ${messages.length} messages`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
  };
}
