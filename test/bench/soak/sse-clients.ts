import { request, type ClientRequest } from "node:http";
import { createParser } from "eventsource-parser";
import { pick } from "./appender.js";

/**
 * SSE clients that come and go as real ones do: each tails one stream,
 * disconnects every 10-20 s and reconnects at once with `Last-Event-ID`
 * (and after 1 s, as `retry:` asks, when the server ends the stream or the
 * connection fails). Each checks the offsets it receives: strictly increasing
 * (an offset at or below the last one is a duplicate), and, against the
 * offsets the appender was acknowledged for its stream, no gap (an
 * acknowledged offset below the last one received that never arrived). The
 * first connection carries no `Last-Event-ID`, so a client must see its
 * stream's every event; the end of the soak compares that with a paged read.
 */

export interface SseWindow {
  frames: number;
  ephemeral: number;
  duplicates: number;
  gaps: number;
  reconnects: number;
  /** The server ended the stream (or the connection broke) without the client asking. */
  unplannedEnds: number;
  /** Connections refused (non-200) or failed before an answer. */
  errors: number;
}

function emptyWindow(): SseWindow {
  return { frames: 0, ephemeral: 0, duplicates: 0, gaps: 0, reconnects: 0, unplannedEnds: 0, errors: 0 };
}

export class SseClient {
  /** Stored-event offsets received, in order of receipt (duplicates excluded). */
  readonly seen: number[] = [];
  private readonly seenSet = new Set<number>();
  readonly duplicateOffsets: number[] = [];
  readonly gapOffsets = new Set<number>();
  lastSeen = 0;
  private req: ClientRequest | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly errorSamples: string[] = [];

  constructor(
    readonly id: number,
    readonly path: string,
    private readonly baseUrl: string,
    private readonly stats: () => SseWindow,
  ) {}

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.req?.destroy();
  }

  /** Acknowledged offsets at or below the last one received that this client never got; returns how many are new. */
  checkGaps(acked: readonly number[]): number {
    let found = 0;
    for (const offset of acked) {
      if (offset <= this.lastSeen && !this.seenSet.has(offset) && !this.gapOffsets.has(offset)) {
        this.gapOffsets.add(offset);
        found += 1;
      }
    }
    return found;
  }

  private connect(): void {
    if (this.stopped) return;
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (this.lastSeen > 0) headers["last-event-id"] = String(this.lastSeen);
    let planned = false;
    let responded = false;
    let over = false;
    // Whichever of the request's and the response's ends comes first decides, once per connection.
    const ended = (error?: string): void => {
      if (over || this.stopped) return;
      over = true;
      clearTimeout(this.timer);
      if (planned) {
        this.stats().reconnects += 1;
        this.connect();
        return;
      }
      if (error !== undefined && !responded) {
        this.stats().errors += 1;
        if (this.errorSamples.length < 5) this.errorSamples.push(error);
      } else this.stats().unplannedEnds += 1;
      this.timer = setTimeout(() => { this.connect(); }, 1000);
    };
    const req = request(`${this.baseUrl}/streams${this.path}?live=sse`, { headers, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        ended(`status ${String(res.statusCode)}`);
        return;
      }
      responded = true;
      const parser = createParser({
        onEvent: (message) => {
          if (message.id === undefined || message.id === "") {
            this.stats().ephemeral += 1;
            return;
          }
          const offset = Number(message.id);
          if (offset <= this.lastSeen || this.seenSet.has(offset)) {
            this.stats().duplicates += 1;
            this.duplicateOffsets.push(offset);
            return;
          }
          this.stats().frames += 1;
          this.seen.push(offset);
          this.seenSet.add(offset);
          this.lastSeen = offset;
        },
      });
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => { parser.feed(chunk); });
      res.on("error", () => undefined);
      res.once("close", () => { ended(); });
      // Leave after 10-20 s, as a browser tab or a flaky network would, and come back with Last-Event-ID.
      this.timer = setTimeout(() => {
        planned = true;
        req.destroy();
      }, 10_000 + Math.random() * 10_000);
    });
    req.on("error", (err) => { ended(err.message); });
    this.req = req;
    req.end();
  }
}

export class SseClients {
  readonly clients: SseClient[];
  private window = emptyWindow();
  private readonly total = emptyWindow();

  constructor(baseUrl: string, streams: readonly string[], count: number) {
    const stats = (): SseWindow => this.window;
    this.clients = Array.from({ length: count }, (_, i) => new SseClient(i, pick(streams), baseUrl, stats));
  }

  start(): void {
    for (const client of this.clients) client.start();
  }

  stop(): void {
    for (const client of this.clients) client.stop();
  }

  /** Check for gaps against the acknowledged appends, then return the window's counts and start a new one. */
  takeWindow(acked: ReadonlyMap<string, readonly number[]>): SseWindow {
    for (const client of this.clients) this.window.gaps += client.checkGaps(acked.get(client.path) ?? []);
    const window = this.window;
    for (const key of Object.keys(window) as (keyof SseWindow)[]) this.total[key] += window[key];
    this.window = emptyWindow();
    return window;
  }

  totals(): SseWindow {
    return { ...this.total };
  }
}
