import { setTimeout as sleep } from "node:timers/promises";
import type { EventSourceMessage } from "eventsource-parser";
import { indexedInput } from "../support/events.js";
import { keepAliveAgent, postJson } from "../support/http.js";
import { openSseStream } from "../support/sse-client.js";
import { summarise, type LatencySummary } from "../support/stats.js";

/**
 * Append -> SSE delivery latency under a steady open-loop rate: one event
 * every `intervalMs`, sent on schedule whether or not earlier appends have
 * been answered (so a slow reply cannot hide queueing). Each event carries
 * its index; latency is the SSE receipt time minus the time taken just
 * before its POST was handed to node:http, both in this process.
 */

export interface LatencyOptions {
  baseUrl: string;
  path: string;
  events: number;
  intervalMs: number;
  warmupEvents: number;
}

export interface LatencyResult {
  events: number;
  targetRatePerSec: number;
  achievedRatePerSec: number;
  delivery: LatencySummary;
  /** POST round trip (send -> 201), for comparison: SSE delivery does not wait for it. */
  appendRoundTrip: LatencySummary;
}

interface EventPayload {
  payload?: { i?: number };
}

export async function appendToSseLatency(options: LatencyOptions): Promise<LatencyResult> {
  const agent = keepAliveAgent(32);
  const url = `${options.baseUrl}/streams${options.path}`;
  const total = options.warmupEvents + options.events;
  const sentAt = new Float64Array(total).fill(Number.NaN);
  const receivedAt = new Float64Array(total).fill(Number.NaN);
  const roundTrips: number[] = [];
  let received = 0;
  let duplicates = 0;
  let wake: (() => void) | undefined;

  const onEvent = (event: EventSourceMessage): void => {
    // Timestamp first: parsing the JSON is the reader's work, not delivery.
    const now = performance.now();
    const i = (JSON.parse(event.data) as EventPayload).payload?.i;
    if (i === undefined || i < 0 || i >= total) return;
    if (!Number.isNaN(receivedAt[i])) {
      duplicates += 1;
      return;
    }
    receivedAt[i] = now;
    received += 1;
    wake?.();
  };
  const sse = await openSseStream(`${url}?live=sse`, onEvent);
  if (sse.status !== 200) throw new Error(`SSE answered ${sse.status}`);

  const waitReceived = async (count: number, timeoutMs: number): Promise<void> => {
    const deadline = performance.now() + timeoutMs;
    while (received < count) {
      if (performance.now() > deadline) throw new Error(`SSE delivered ${received} of ${count} events in time`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  };

  const failures: unknown[] = [];
  const send = (i: number): void => {
    const body = JSON.stringify(indexedInput(i));
    const t = performance.now();
    sentAt[i] = t;
    postJson(agent, url, body).then(
      () => roundTrips.push(performance.now() - t),
      (err: unknown) => failures.push(err),
    );
  };

  // Warm-up: let the tail subscribe and the JIT settle before anything is timed.
  for (let i = 0; i < options.warmupEvents; i++) {
    send(i);
    await sleep(options.intervalMs);
  }
  await waitReceived(options.warmupEvents, 10_000);
  roundTrips.length = 0;

  // Absolute schedule: a late tick sends at once instead of pushing every later send back.
  const start = performance.now();
  for (let n = 0; n < options.events; n++) {
    const due = start + n * options.intervalMs;
    const wait = due - performance.now();
    if (wait >= 1) await sleep(Math.floor(wait));
    send(options.warmupEvents + n);
  }
  const sendMs = performance.now() - start;
  await waitReceived(total, 15_000);
  sse.close();
  agent.destroy();
  if (failures.length > 0) throw new Error(`${failures.length} appends failed; first: ${String(failures[0])}`);
  if (duplicates > 0) throw new Error(`SSE delivered ${duplicates} duplicate events`);

  const latencies: number[] = [];
  for (let i = options.warmupEvents; i < total; i++) latencies.push((receivedAt[i] as number) - (sentAt[i] as number));
  return {
    events: options.events,
    targetRatePerSec: Math.round(1000 / options.intervalMs),
    achievedRatePerSec: Math.round((options.events * 1000) / sendMs),
    delivery: summarise(latencies),
    appendRoundTrip: summarise(roundTrips),
  };
}
