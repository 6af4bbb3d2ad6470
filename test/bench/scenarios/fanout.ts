import { fork, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { EventEnvelope } from "../../../shared/contract/envelope.js";
import { stopChild } from "../support/gateway-process.js";
import { indexedInput } from "../support/events.js";
import { keepAliveAgent, postJson } from "../support/http.js";
import { progress } from "../support/log.js";
import { monotonicUs, type Phases } from "../support/phases.js";
import { epochMs, percentile } from "../support/stats.js";
import type { ConnectedReport, DeliveredReport, WorkerCommand, WorkerReport } from "./fanout-protocol.js";

/**
 * Many SSE clients on one stream: what holding them costs the gateway in
 * memory, and how long one append takes to reach all of them. The clients
 * live in worker processes (fanout-worker.ts); this process appends and
 * watches the gateway's RSS.
 */

export interface FanoutOptions {
  baseUrl: string;
  path: string;
  clients: number;
  workers: number;
  events: number;
  batchSize: number;
  gatewayRss: () => number;
  phases: Phases;
  /** Kills the workers if the run is interrupted. */
  registerCleanup: (cleanup: () => Promise<void>) => void;
}

export interface FanoutResult {
  clients: number;
  events: number;
  connectMs: number;
  /**
   * growth = delivered - before (the target's figure); peakGrowth = highest
   * 50 ms sample - before; settled = 2 s after delivery, clients still connected.
   */
  rssMb: { before: number; connected: number; delivered: number; settled: number; peak: number; growth: number; peakGrowth: number };
  /** First append sent -> the last client received the last event. */
  deliveryMs: { p50Client: number; lastClient: number };
  exactlyOnceInOrder: boolean;
  problems: string[];
}

const WORKER = fileURLToPath(new URL("./fanout-worker.ts", import.meta.url));
const MB = 1024 * 1024;
const mb = (bytes: number): number => Math.round((bytes / MB) * 10) / 10;

function nextReport<K extends WorkerReport["kind"]>(child: ChildProcess, kind: K, timeoutMs: number): Promise<Extract<WorkerReport, { kind: K }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { finish(new Error(`fan-out worker sent no "${kind}" within ${timeoutMs} ms`)); }, timeoutMs);
    const onMessage = (message: WorkerReport): void => {
      if (message.kind === "error") finish(new Error(`fan-out worker: ${message.message}`));
      else if (message.kind === kind) finish(null, message as Extract<WorkerReport, { kind: K }>);
    };
    const onExit = (): void => { finish(new Error("fan-out worker exited")); };
    function finish(err: Error | null, message?: Extract<WorkerReport, { kind: K }>): void {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
      if (err !== null || message === undefined) reject(err ?? new Error("no message"));
      else resolve(message);
    }
    child.on("message", onMessage);
    child.on("exit", onExit);
  });
}

export async function fanout(options: FanoutOptions): Promise<FanoutResult> {
  const workers = Array.from({ length: options.workers }, () => fork(WORKER, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  options.registerCleanup(async () => {
    await Promise.all(workers.map((w) => stopChild(w, 2_000)));
  });

  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, options.gatewayRss()); }, 50);
  try {
    // Let the gateway settle after start so the baseline is its idle footprint.
    await sleep(1_000);
    const before = options.gatewayRss();
    peak = before;

    const connectStart = performance.now();
    const connectStartUs = monotonicUs();
    const deliveredReports = workers.map((w) => nextReport(w, "delivered", 120_000));
    // Attach a handler now; each promise is awaited below, after the appends.
    for (const report of deliveredReports) report.catch(() => undefined);
    const connected: Promise<ConnectedReport>[] = workers.map((worker, index) => {
      const share = Math.floor(options.clients / options.workers) + (index < options.clients % options.workers ? 1 : 0);
      const command: WorkerCommand = {
        kind: "connect",
        url: `${options.baseUrl}/streams${options.path}?live=sse`,
        clients: share,
        concurrency: 25,
        expectedEvents: options.events,
        timeoutMs: 60_000,
      };
      const report = nextReport(worker, "connected", 60_000);
      worker.send(command);
      return report;
    });
    const connectedCount = (await Promise.all(connected)).reduce((sum, r) => sum + r.clients, 0);
    const connectMs = performance.now() - connectStart;
    options.phases.windows["fanout.connect"] = { startUs: connectStartUs, endUs: monotonicUs() };
    progress(`fan-out: ${connectedCount} SSE clients connected in ${Math.round(connectMs)} ms`);
    await sleep(500);
    const connectedRss = options.gatewayRss();

    const agent = keepAliveAgent(1);
    const url = `${options.baseUrl}/streams${options.path}`;
    const appended: number[] = [];
    const firstSend = epochMs();
    const deliverStartUs = monotonicUs();
    for (let i = 0; i < options.events; i += options.batchSize) {
      const batch = Array.from({ length: Math.min(options.batchSize, options.events - i) }, (_, k) => indexedInput(i + k));
      const events = await postJson<EventEnvelope[]>(agent, url, JSON.stringify(batch));
      appended.push(...events.map((e) => e.offset));
    }
    agent.destroy();

    const delivered: DeliveredReport[] = await Promise.all(deliveredReports);
    const deliveredRss = options.gatewayRss();
    options.phases.windows["fanout.deliver"] = { startUs: deliverStartUs, endUs: monotonicUs() };
    // Still connected, a little later: tells memory held per client from garbage the burst left behind.
    await sleep(2_000);
    const settledRss = options.gatewayRss();
    const problems = delivered.flatMap((r) => r.problems);
    const sameAsAppended = (r: DeliveredReport): boolean => r.reference.length === appended.length && r.reference.every((o, i) => o === appended[i]);
    for (const [index, r] of delivered.entries()) {
      if (!sameAsAppended(r)) problems.push(`worker ${index}: client 0's offsets differ from the appended offsets`);
    }
    const total = delivered.reduce((sum, r) => sum + r.clients, 0);
    const exactlyOnceInOrder = total === options.clients && delivered.every((r) => r.complete === r.clients && r.matchingReference === r.clients && sameAsAppended(r));
    const finishes = delivered.flatMap((r) => r.lastReceiptEpochMs).map((t) => t - firstSend);

    return {
      clients: total,
      events: options.events,
      connectMs: Math.round(connectMs),
      rssMb: { before: mb(before), connected: mb(connectedRss), delivered: mb(deliveredRss), settled: mb(settledRss), peak: mb(peak), growth: mb(deliveredRss - before), peakGrowth: mb(peak - before) },
      deliveryMs: { p50Client: Math.round(percentile(finishes, 50)), lastClient: Math.round(Math.max(...finishes)) },
      exactlyOnceInOrder,
      problems,
    };
  } finally {
    clearInterval(sampler);
    for (const worker of workers) if (worker.connected) worker.send({ kind: "close" } satisfies WorkerCommand);
    await Promise.all(workers.map((w) => stopChild(w, 2_000)));
  }
}
