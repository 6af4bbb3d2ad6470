import type { ServerResponse } from "node:http";
import type { FastifyBaseLogger } from "fastify";
import type { DecodedEvent } from "../../shared/contract/envelope.js";
import type { Nats } from "../../shared/nats/connection.js";
import { lastMessage, readFew, readRange } from "../../shared/log/read.js";
import { eventsRead, sseClients } from "../../shared/service/metrics.js";
import { HEARTBEAT_FRAME, storedFrame, type SseBatch, type SseFrame } from "./sse-frame.js";
import type { Tail } from "./tail.js";
import type { TailHub } from "./tail-hub.js";

export interface SseSessionOptions {
  nats: Nats;
  hub: TailHub;
  /** Deliver events with offsets above this (Last-Event-ID / ?after=). */
  after: number;
  heartbeatMs: number;
  maxBufferedBytes: number;
  logger: FastifyBaseLogger;
}

const RECONNECT_DELAY_MS = 1000;
const CATCH_UP_CHUNK_CHARS = 64 * 1024;

export const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache, no-transform",
  connection: "keep-alive",
  // nginx and similar proxies would otherwise buffer the stream.
  "x-accel-buffering": "no",
} as const;

/**
 * The events a resuming client missed. A client that resumes after a short break usually misses a few: on one
 * stream they are read by direct get, and a consumer is created only for a long catch-up (issue #20); a subtree's
 * wildcard is read through a consumer.
 */
async function* catchUpRead(nats: Nats, filter: string, from: number, until: number): AsyncGenerator<DecodedEvent> {
  if (filter.includes("*") || filter.includes(">")) {
    yield* readRange(nats, filter, from, until);
    return;
  }
  for await (const m of readFew(nats, filter, from, until)) yield m.decode();
}

/**
 * One SSE client: catch up from `after` (JetStream below the tail's floor,
 * memory above it), then follow the shared live tail. The tail must already be
 * acquired; the session releases it when the client goes away.
 */
export class SseSession {
  private closed = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private cursor: number;

  constructor(
    private readonly res: ServerResponse,
    private readonly tail: Tail,
    private readonly options: SseSessionOptions,
  ) {
    this.cursor = options.after;
  }

  async run(): Promise<void> {
    const { res, options } = this;
    res.on("close", () => { this.close(); });
    sseClients.inc();
    res.writeHead(200, SSE_HEADERS);
    // A short reconnection delay: resuming is cheap and loses nothing (WHATWG SSE `retry` field).
    res.write(`: connected\nretry: ${RECONNECT_DELAY_MS}\n\n`);
    this.heartbeat = setInterval(() => {
      res.write(HEARTBEAT_FRAME);
    }, options.heartbeatMs);
    this.heartbeat.unref();
    try {
      await this.catchUp();
    } catch (err) {
      options.logger.warn({ err }, "sse catch-up failed; closing so the client resumes");
      res.end();
    }
  }

  /**
   * Read JetStream until the cursor reaches the point where the tail's memory takes over (its floor, or later if
   * replaying all of memory would overflow the socket buffer), then switch to memory + live in one step.
   */
  private async catchUp(): Promise<void> {
    const { nats } = this.options;
    const filter = this.tail.filter;
    // Characters, not bytes: a quarter of the cap leaves room for non-ASCII text and the live frames that follow.
    const replayBudget = Math.floor(this.options.maxBufferedBytes / 4);
    while (!this.isClosed()) {
      const handOver = this.tail.replayFrom(replayBudget);
      if (this.cursor >= handOver) {
        this.tail.replayAndSubscribe(this.cursor, this.subscriber);
        return;
      }
      const last = await lastMessage(nats, filter);
      if (last !== null && last.seq > this.cursor) {
        // Frames are written in chunks: one socket write per event would cost more than the event itself.
        let chunk = "";
        for await (const event of catchUpRead(nats, filter, this.cursor + 1, handOver)) {
          if (this.isClosed()) return;
          chunk += storedFrame(event).text;
          eventsRead.inc();
          this.cursor = event.offset;
          if (chunk.length >= CATCH_UP_CHUNK_CHARS) {
            const flushed = this.res.write(chunk);
            chunk = "";
            if (!flushed) await this.drained();
          }
        }
        if (chunk !== "" && !this.isClosed()) this.res.write(chunk);
      }
      // Nothing matching lies in (cursor, handOver] any more: everything there was read above.
      this.cursor = Math.max(this.cursor, handOver);
    }
  }

  private readonly subscriber = {
    deliver: (frame: SseFrame): void => {
      if (this.closed) return;
      if (frame.offset !== null) this.cursor = frame.offset;
      this.send(frame.text);
    },
    deliverBatch: (batch: SseBatch): void => {
      if (this.closed) return;
      const { cursor } = this;
      // Usually the whole batch is new to this client; after a replay its first frames may not be.
      const text = batch.firstOffset === null || batch.firstOffset > cursor ? batch.text : batch.frames.filter((f) => f.offset === null || f.offset > cursor).map((f) => f.text).join("");
      if (batch.lastOffset !== null) this.cursor = Math.max(cursor, batch.lastOffset);
      if (text !== "") this.send(text);
    },
    end: (): void => {
      this.res.end();
    },
  };

  /** A method, not a field read, because the socket's close event flips it between awaits. */
  private isClosed(): boolean {
    return this.closed;
  }

  private send(text: string): void {
    // Cut off already: the close event that marks the session closed comes a moment later.
    if (this.res.destroyed) return;
    this.res.write(text);
    if (this.res.writableLength > this.options.maxBufferedBytes) {
      this.options.logger.warn({ buffered: this.res.writableLength }, "sse client too slow; disconnecting it (it can resume with Last-Event-ID)");
      this.res.destroy();
    }
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.res.off("drain", done);
        this.res.off("close", done);
        resolve();
      };
      this.res.on("drain", done);
      this.res.on("close", done);
    });
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    sseClients.dec();
    clearInterval(this.heartbeat);
    this.tail.unsubscribe(this.subscriber);
    this.options.hub.release(this.tail);
  }
}
