import type { JetStreamClient } from "@nats-io/jetstream";
import type { EventSourceMessage } from "eventsource-parser";
import type { ReadPage } from "../../../gateway/reads/read-page.js";
import { batchBody } from "../support/events.js";
import { getJson, keepAliveAgent, postJson } from "../support/http.js";
import { progress } from "../support/log.js";
import type { Phases } from "../support/phases.js";
import { openSseStream } from "../support/sse-client.js";
import { perSecond } from "../support/stats.js";
import { rawOrderedRead, type RateResult } from "./raw.js";

/**
 * Reading a long history from offset 0, three ways, over the same 100,000
 * stored events: JetStream directly (ordered consumer, the ceiling), the
 * gateway's SSE catch-up, and the gateway's paged JSON reads.
 */

export interface CatchupOptions {
  baseUrl: string;
  path: string;
  events: number;
  preloadBatch: number;
  js: JetStreamClient;
  streamName: string;
  phases: Phases;
}

export interface CatchupResult {
  events: number;
  preload: RateResult;
  /** Both raw reads; the baseline is the faster one, which keeps the ratios conservative. */
  rawRuns: RateResult[];
  raw: RateResult;
  sse: RateResult;
  paged: RateResult & { pages: number };
}

async function preload(options: CatchupOptions): Promise<RateResult> {
  const agent = keepAliveAgent(2);
  const body = batchBody(options.preloadBatch);
  const url = `${options.baseUrl}/streams${options.path}`;
  const requests = Math.ceil(options.events / options.preloadBatch);
  let next = 0;
  const start = performance.now();
  // Two requests in flight: enough to overlap HTTP with JetStream acks without reordering much.
  const sender = async (): Promise<void> => {
    while (next < requests) {
      next += 1;
      await postJson<unknown>(agent, url, body);
    }
  };
  await Promise.all([sender(), sender()]);
  const ms = performance.now() - start;
  agent.destroy();
  const count = requests * options.preloadBatch;
  return { count, ms, perSec: perSecond(count, ms) };
}

async function sseCatchup(options: CatchupOptions): Promise<RateResult> {
  let count = 0;
  let lastOffset = 0;
  let outOfOrder = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => { done = resolve; });
  let end = 0;
  const onEvent = (event: EventSourceMessage): void => {
    const offset = Number(event.id);
    if (!(offset > lastOffset)) outOfOrder += 1;
    lastOffset = offset;
    count += 1;
    if (count === options.events) {
      end = performance.now();
      done();
    }
  };
  const start = performance.now();
  const sse = await openSseStream(`${options.baseUrl}/streams${options.path}?live=sse`, onEvent);
  if (sse.status !== 200) throw new Error(`SSE answered ${sse.status}`);
  const timeout = setTimeout(done, 60_000);
  await Promise.race([finished, sse.ended]);
  clearTimeout(timeout);
  sse.close();
  if (count < options.events) throw new Error(`SSE catch-up delivered ${count} of ${options.events} events`);
  if (outOfOrder > 0) throw new Error(`SSE catch-up delivered ${outOfOrder} events out of order`);
  const ms = end - start;
  return { count, ms, perSec: perSecond(count, ms) };
}

async function pagedCatchup(options: CatchupOptions): Promise<RateResult & { pages: number }> {
  const agent = keepAliveAgent(1);
  let after = 0;
  let count = 0;
  let pages = 0;
  const start = performance.now();
  for (;;) {
    const page = await getJson<ReadPage>(agent, `${options.baseUrl}/streams${options.path}?after=${after}&limit=1000`);
    pages += 1;
    count += page.events.length;
    after = page.nextOffset;
    if (page.upToDate) break;
  }
  const ms = performance.now() - start;
  agent.destroy();
  if (count !== options.events) throw new Error(`paged catch-up read ${count} of ${options.events} events`);
  return { count, ms, perSec: perSecond(count, ms), pages };
}

export async function catchup(options: CatchupOptions): Promise<CatchupResult> {
  progress(`catch-up: preloading ${options.events} events in batches of ${options.preloadBatch}`);
  const { phases } = options;
  const loaded = await phases.time("catchup.preload", () => preload(options));
  progress(`catch-up: preloaded at ${loaded.perSec} events/s; raw ordered consumer read`);
  const rawFirst = await phases.time("catchup.raw", () => rawOrderedRead(options.js, options.streamName, options.path, options.events));
  progress(`catch-up: raw ${rawFirst.perSec} msgs/s; SSE catch-up`);
  const sse = await phases.time("catchup.sse", () => sseCatchup(options));
  progress(`catch-up: SSE ${sse.perSec} events/s; paged JSON`);
  const paged = await phases.time("catchup.paged", () => pagedCatchup(options));
  progress(`catch-up: paged ${paged.perSec} events/s; raw read again`);
  const rawSecond = await phases.time("catchup.raw2", () => rawOrderedRead(options.js, options.streamName, options.path, options.events));
  const raw = rawFirst.perSec >= rawSecond.perSec ? rawFirst : rawSecond;
  return { events: options.events, preload: loaded, rawRuns: [rawFirst, rawSecond], raw, sse, paged };
}
