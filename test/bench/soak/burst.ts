import { request, type ClientRequest } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import autocannon from "autocannon";
import { createParser } from "eventsource-parser";
import type { ApiTraffic } from "./api-traffic.js";
import type { LogGroup, LogTally } from "./logs.js";
import { rssMb, type ConsumerDetail, type ServerMonitor, type ServerSample } from "./monitor.js";

/**
 * The burst: `agents` new agents, one input each, appended as fast as the
 * gateway takes them (autocannon, closed loop, a fixed amount: exactly what it
 * is made for), then a wait until every agent is answered
 * (`agent/llm-request-settled`, seen on one SSE tail of the whole subtree) or
 * the time runs out. Afterwards: the processors' timeouts and errors from their
 * logs, and the ephemeral consumers left on EVENTS once everything is quiet.
 */

export interface BurstOptions {
  gatewayUrl: string;
  monitor: ServerMonitor;
  pids: ReadonlyMap<string, number>;
  logs: LogTally;
  traffic: ApiTraffic;
  agents: number;
  connections: number;
  timeoutS: number;
  /** How long to wait, once everything is quiet, before counting the consumers left as orphaned. */
  graceS: number;
  progress: (message: string) => void;
}

export interface BurstResult {
  agents: number;
  appends: { ok: number; non2xx: number; errors: number; timeouts: number; seconds: number; perSecond: number; latencyP50Ms: number; latencyP99Ms: number; statusCodes: Record<string, number> };
  /** Agents whose input was stored, and of those, answered (a settled request seen), by result status. */
  answered: number;
  unanswered: number;
  settledByStatus: Record<string, number>;
  errorEvents: number;
  /** From the end of the burst's appends to the last agent answered (or the timeout). */
  answerSeconds: number;
  timedOut: boolean;
  api: { calls: number; errors: number; storedEvents: number; perEvent: number; inMsgsPerEvent: number };
  /** Every JetStream API request from the burst's start to the end, by `<connection>: <kind> <stream>` (api-traffic.ts). */
  apiByClient: Record<string, number>;
  consumers: {
    maxOnEvents: number;
    /** Ephemeral consumers of EVENTS when everything was answered and the processors had nothing pending (the soak's own subtree tail excluded). */
    ephemeralWhenQuiet: number;
    /** The same `graceS` later: orphans, removed only by the server's inactivity threshold. */
    orphaned: number;
    orphanSamples: ConsumerDetail[];
    graceS: number;
  };
  natsRssMb: { before: number | null; peak: number | null; after: number | null };
  logs: { timeouts: Record<string, number>; errors: Record<string, number>; warnings: Record<string, number>; top: LogGroup[] };
  progress: { second: number; stored: number; answered: number; consumers: number; apiCalls: number; natsRssMb: number | null }[];
}

const BURST_PREFIX = "/soak/burst";
const TAIL_FILTER = "events.soak.burst.>";

/** An SSE tail of the burst's subtree that counts settled requests per stream; reconnects with Last-Event-ID. */
class SubtreeTail {
  readonly answered = new Set<string>();
  readonly settledByStatus: Record<string, number> = {};
  errorEvents = 0;
  stored = 0;
  private lastId = "";
  private req: ClientRequest | undefined;
  private stopped = false;

  constructor(private readonly url: string) {}

  start(): void {
    if (this.stopped) return;
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (this.lastId !== "") headers["last-event-id"] = this.lastId;
    let over = false;
    const again = (): void => {
      if (over || this.stopped) return;
      over = true;
      setTimeout(() => { this.start(); }, 1000);
    };
    const req = request(this.url, { headers, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        again();
        return;
      }
      const parser = createParser({
        onEvent: (message) => {
          if (message.id === undefined || message.id === "") return;
          this.lastId = message.id;
          this.stored += 1;
          const event = JSON.parse(message.data) as { streamPath: string; type: string; payload?: { result?: { status?: string } } };
          if (event.type === "agent/llm-request-settled") {
            this.answered.add(event.streamPath);
            const status = event.payload?.result?.status ?? "unknown";
            this.settledByStatus[status] = (this.settledByStatus[status] ?? 0) + 1;
          } else if (event.type === "stream/error-occurred") this.errorEvents += 1;
        },
      });
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => { parser.feed(chunk); });
      res.on("error", () => undefined);
      res.once("close", again);
    });
    req.on("error", again);
    this.req = req;
    req.end();
  }

  stop(): void {
    this.stopped = true;
    this.req?.destroy();
  }
}

/** A request that got no answer in time: NATS's "timeout", or the publisher's "did not acknowledge a publish within N ms". */
function isTimeout(group: LogGroup): boolean {
  return /timed? ?out|did not acknowledge/i.test(`${group.msg} ${group.err}`);
}

/** The processors' consumers have nothing pending or unacknowledged. */
function processorsQuiet(consumers: readonly ConsumerDetail[]): boolean {
  return consumers.filter((c) => c.durable && c.name.startsWith("processor-")).every((c) => c.numPending === 0 && c.numAckPending === 0);
}

export async function runBurst(options: BurstOptions): Promise<BurstResult> {
  const { monitor, pids, progress, agents } = options;
  const natsPid = pids.get("nats-server") ?? -1;
  const tail = new SubtreeTail(`${options.gatewayUrl}/streams${BURST_PREFIX}/**?live=sse`);
  tail.start();
  await sleep(1000);
  await options.traffic.takeWindow();
  const before: ServerSample = await monitor.sample();
  const natsBefore = rssMb(natsPid);
  let natsPeak = natsBefore ?? 0;
  let maxConsumers = before.eventsConsumers;
  const timeline: BurstResult["progress"] = [];
  const startedAt = performance.now();
  const seconds = (): number => Math.round((performance.now() - startedAt) / 100) / 10;

  // Sample the server every 5 s while the burst and its answers run.
  const sampling = { on: true };
  const sampler = (async () => {
    let lastPrint = 0;
    while (sampling.on) {
      const sample = await monitor.sample().catch(() => null);
      const rss = rssMb(natsPid);
      if (rss !== null) natsPeak = Math.max(natsPeak, rss);
      if (sample !== null) {
        maxConsumers = Math.max(maxConsumers, sample.eventsConsumers);
        const row = { second: seconds(), stored: sample.eventsMessages - before.eventsMessages, answered: tail.answered.size, consumers: sample.eventsConsumers, apiCalls: sample.apiTotal - before.apiTotal, natsRssMb: rss };
        timeline.push(row);
        if (row.second - lastPrint >= 10) {
          lastPrint = row.second;
          progress(`burst ${row.second.toFixed(0)}s: ${row.stored} stored, ${row.answered}/${agents} answered, ${row.consumers} consumers on EVENTS, ${row.apiCalls} API calls, nats-server RSS ${String(rss)} MB`);
        }
      }
      await sleep(5000);
    }
  })();

  progress(`burst: ${agents} new agents, one input each, ${options.connections} connections`);
  let next = 0;
  const statusCodes: Record<string, number> = {};
  const result = await autocannon({
    url: options.gatewayUrl,
    connections: options.connections,
    amount: agents,
    timeout: 30,
    requests: [
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        setupRequest: (req) => {
          const i = next++;
          const body = { type: "agent/input-added", payload: { role: "user", content: `burst input ${i}` }, idempotencyKey: `burst-${i}` };
          return { ...req, path: `/streams${BURST_PREFIX}/a-${String(i).padStart(6, "0")}`, body: JSON.stringify(body) };
        },
        onResponse: (status) => {
          statusCodes[status] = (statusCodes[status] ?? 0) + 1;
        },
      },
    ],
  });
  const appendSeconds = seconds();
  const ok = result["2xx"];
  progress(`burst: ${ok} inputs stored in ${appendSeconds.toFixed(1)} s (${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts); waiting for the answers`);

  const deadline = performance.now() + options.timeoutS * 1000;
  while (tail.answered.size < ok && performance.now() < deadline) await sleep(500);
  const timedOut = tail.answered.size < ok;
  const answerSeconds = Math.round((seconds() - appendSeconds) * 10) / 10;
  progress(timedOut ? `burst: ${tail.answered.size}/${ok} answered when the ${options.timeoutS} s ran out` : `burst: all ${ok} answered ${answerSeconds} s after the last append`);

  // Quiet: the processors have handled everything (the settled events too), then the consumers left are counted.
  const quietDeadline = performance.now() + 120_000;
  while (performance.now() < quietDeadline && !processorsQuiet(await monitor.consumers())) await sleep(1000);
  const ephemeral = (list: readonly ConsumerDetail[]): ConsumerDetail[] => list.filter((c) => !c.durable && c.filter !== TAIL_FILTER);
  const whenQuiet = ephemeral(await monitor.consumers());
  progress(`burst: ${whenQuiet.length} ephemeral consumers on EVENTS once the processors are quiet; counting again in ${options.graceS} s`);
  await sleep(options.graceS * 1000);
  const orphans = ephemeral(await monitor.consumers());
  sampling.on = false;
  await sampler;
  tail.stop();
  const after = await monitor.sample();
  const apiByClient = await options.traffic.takeWindow();
  const stored = after.eventsMessages - before.eventsMessages;
  const calls = after.apiTotal - before.apiTotal;
  const round2 = (v: number): number => Math.round(v * 100) / 100;

  const top = options.logs.topGroups(40);
  const timeouts: Record<string, number> = {};
  // The processors' timeouts; the gateway's and nats-server's lines are reported as they are.
  for (const group of options.logs.topGroups(Number.POSITIVE_INFINITY).filter((g) => isTimeout(g) && g.service !== "gateway" && g.service !== "nats-server")) timeouts[group.service] = (timeouts[group.service] ?? 0) + group.count;
  const totals = options.logs.totals();
  return {
    agents,
    appends: {
      ok,
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      seconds: appendSeconds,
      perSecond: Math.round(ok / appendSeconds),
      latencyP50Ms: result.latency.p50,
      latencyP99Ms: result.latency.p99,
      statusCodes,
    },
    answered: tail.answered.size,
    unanswered: ok - tail.answered.size,
    settledByStatus: tail.settledByStatus,
    errorEvents: tail.errorEvents,
    answerSeconds,
    timedOut,
    api: { calls, errors: after.apiErrors - before.apiErrors, storedEvents: stored, perEvent: round2(calls / Math.max(1, stored)), inMsgsPerEvent: round2((after.inMsgs - before.inMsgs) / Math.max(1, stored)) },
    apiByClient,
    consumers: { maxOnEvents: maxConsumers, ephemeralWhenQuiet: whenQuiet.length, orphaned: orphans.length, orphanSamples: orphans.slice(0, 10), graceS: options.graceS },
    natsRssMb: { before: natsBefore, peak: natsPeak, after: rssMb(natsPid) },
    logs: { timeouts, errors: totals.errors, warnings: totals.warnings, top },
    progress: timeline,
  };
}
