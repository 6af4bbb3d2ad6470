import { setTimeout as sleep } from "node:timers/promises";
import type { Pool } from "undici";
import { pick } from "./appender.js";

/**
 * Reading streams page by page (`GET /streams/<path>?after=&limit=`), as a
 * client catching up does: one reader, which picks a random stream, reads it
 * from the start to `upToDate` with pages back to back, pauses, and picks
 * another. Each page must hold strictly increasing offsets after `after`.
 */

export interface ReaderWindow {
  pages: number;
  events: number;
  /** Non-200 answers (but 404 for a stream with no event yet), failed requests, pages out of order. */
  errors: number;
  latenciesMs: number[];
}

function emptyWindow(): ReaderWindow {
  return { pages: 0, events: 0, errors: 0, latenciesMs: [] };
}

export interface PageEvent {
  offset: number;
  type: string;
}

interface Page {
  events: PageEvent[];
  nextOffset: number;
  upToDate: boolean;
}

export interface PageOutcome {
  status: number;
  page: Page | null;
  text: string;
}

/** One page of a stream; `page` is null unless the answer was 200. */
export async function readPage(pool: Pool, path: string, after: number, limit: number): Promise<PageOutcome> {
  const reply = await pool.request({ method: "GET", path: `/streams${path}?after=${after}&limit=${limit}` });
  const text = await reply.body.text();
  return { status: reply.statusCode, page: reply.statusCode === 200 ? (JSON.parse(text) as Page) : null, text };
}

/** Every event of a stream (offset and type), read page by page to the end; [] for a stream with none. */
export async function readAllEvents(pool: Pool, path: string, limit = 1000): Promise<PageEvent[]> {
  const events: PageEvent[] = [];
  let after = 0;
  for (;;) {
    const { status, page, text } = await readPage(pool, path, after, limit);
    if (status === 404) return events;
    if (page === null) throw new Error(`GET ${path}?after=${after} answered ${status}: ${text.slice(0, 200)}`);
    for (const event of page.events) events.push({ offset: event.offset, type: event.type });
    if (page.upToDate || page.events.length === 0) return events;
    after = page.nextOffset;
  }
}

export class PagedReader {
  private window = emptyWindow();
  private stopped = false;
  private running: Promise<void> | undefined;
  readonly errorSamples: string[] = [];

  constructor(
    private readonly pool: Pool,
    private readonly streams: readonly string[],
    private readonly limit = 100,
    private readonly pauseMs = 500,
  ) {}

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  takeWindow(): ReaderWindow {
    const window = this.window;
    this.window = emptyWindow();
    return window;
  }

  private error(description: string): void {
    this.window.errors += 1;
    if (this.errorSamples.length < 10) this.errorSamples.push(description);
  }

  /** A method, not a field read: stop() flips it between awaits. */
  private isStopped(): boolean {
    return this.stopped;
  }

  private async loop(): Promise<void> {
    while (!this.isStopped()) {
      const path = pick(this.streams);
      let after = 0;
      while (!this.isStopped()) {
        const started = performance.now();
        let outcome: PageOutcome;
        try {
          outcome = await readPage(this.pool, path, after, this.limit);
        } catch (err) {
          this.error(`GET ${path}: ${err instanceof Error ? err.message : String(err)}`);
          break;
        }
        const { status, page, text } = outcome;
        if (status === 404) break;
        if (page === null) {
          this.error(`GET ${path}?after=${after}: ${status} ${text.slice(0, 200)}`);
          break;
        }
        this.window.pages += 1;
        this.window.events += page.events.length;
        this.window.latenciesMs.push(performance.now() - started);
        let previous = after;
        for (const event of page.events) {
          if (event.offset <= previous) this.error(`GET ${path}?after=${after}: offset ${event.offset} after ${previous}`);
          previous = event.offset;
        }
        if (page.upToDate || page.events.length === 0) break;
        after = page.nextOffset;
      }
      await sleep(this.pauseMs);
    }
  }
}
