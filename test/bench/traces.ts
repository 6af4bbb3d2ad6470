/**
 * `npx tsx test/bench/traces.ts [--rounds N]`: what tracing costs (issue 15, "Traces out"), tracing off and on side
 * by side in one run, rounds alternating, every service its own process:
 *   - appends/s: HTTP appends through the gateway process (autocannon, 16 connections, 5 s after 1 s untimed, one
 *     event per request), on one stream: the appends scenario's `bench` events, which the traces processor receives
 *     and acks unread, then `agent/input-added` (trigger none), which it reads and folds;
 *   - hop: a `job/requested` stored -> the trivial processor's `job/done` stored, 100 events/s, 300 untimed then 500
 *     measured (as test/bench/processors.ts measures it);
 *   - meanwhile, both off and on, ten agent turns a second (input, request started, request settled: three events
 *     each, published straight to NATS) on their own streams, which the traces processor exports when it runs.
 * "On" is the traces processor (processors/traces, a process of its own, a fresh consumer each round) reading every
 * event and exporting to an OTLP/HTTP sink in this process that answers 200; "off" is the same mesh without it. The
 * runtime's `traceparent` on reactions is in both (it is not switched off).
 * Results: stdout and .data/bench-traces.json.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:http";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DeliverPolicy } from "@nats-io/jetstream";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import { loadProcessorConfig } from "../../processors/runtime/config.js";
import type { Nats } from "../../shared/nats/connection.js";
import { connectToEvents } from "../../shared/nats/events-stream.js";
import { createLogger } from "../../shared/service/logger.js";
import { appendThroughput } from "./scenarios/appends.js";
import { postLoad } from "./support/post-load.js";
import { REPO_ROOT, startGatewayProcess, stopChild } from "./support/gateway-process.js";
import { print, progress } from "./support/log.js";
import { summarise, type LatencySummary } from "./support/stats.js";
import { until } from "./support/until.js";

const ROUNDS = Number(process.argv[process.argv.indexOf("--rounds") + 1] ?? "3") || 3;
const HOP_INTERVAL_MS = 10;
const HOP_WARM_UP = 300;
const HOP_MEASURED = 500;
const TURNS_PER_SECOND = 10;

function startService(entry: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, entry)], { cwd: REPO_ROOT, env: { ...process.env, LOG_LEVEL: "error", ...env }, stdio: ["ignore", "ignore", "inherit"] });
}

async function waitPulling(nats: Nats, durable: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (((await nats.jsm.consumers.info(nats.streamName, durable).catch(() => null))?.num_waiting ?? 0) === 0) {
    if (Date.now() > deadline) throw new Error(`${durable}: not pulling within 60 s`);
    await sleep(50);
  }
}

const body = (type: string, payload: unknown, extra = ""): Uint8Array => Buffer.from(`{"type":"${type}","payload":${JSON.stringify(payload)},"createdAt":"${new Date().toISOString()}"${extra}}`);

/** Each trigger's time to its reaction being stored, seen by an ordered consumer of the subject. */
async function hop(nats: Nats, subject: string): Promise<LatencySummary> {
  const reactedAt = new Map<number, number>();
  const consumer = await nats.js.consumers.get(nats.streamName, { filter_subjects: subject, deliver_policy: DeliverPolicy.New });
  const messages = await consumer.consume({ max_messages: 256 });
  void (async () => {
    for await (const m of messages) {
      const event = JSON.parse(Buffer.from(m.data).toString("utf8")) as { type: string; source?: { causationOffset?: number } };
      if (event.type === "job/done" && event.source?.causationOffset !== undefined) reactedAt.set(event.source.causationOffset, performance.now());
    }
  })();
  const run = async (count: number): Promise<number[]> => {
    const sentAt = new Map<number, number>();
    const acks: Promise<void>[] = [];
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const wait = started + i * HOP_INTERVAL_MS - performance.now();
      if (wait > 1) await sleep(wait);
      const at = performance.now();
      acks.push(nats.publisher.publish(subject, body("job/requested", { i })).then((ack) => void sentAt.set(ack.seq, at)));
    }
    await Promise.all(acks);
    await until(() => [...sentAt.keys()].every((offset) => reactedAt.has(offset)), 60_000, `${subject}: every reaction`, 5);
    return [...sentAt].map(([offset, at]) => (reactedAt.get(offset) as number) - at);
  };
  await run(HOP_WARM_UP);
  const latencies = await run(HOP_MEASURED);
  messages.stop();
  return summarise(latencies);
}

/** Ten complete agent turns a second, each on its own stream, until stopped. */
function feedTurns(nats: Nats): { stop(): Promise<void> } {
  const control = { stopped: false };
  const loop = (async () => {
    for (let turn = 0; !control.stopped; turn++) {
      const subject = `events.bench.turns.t${turn}`;
      const input = await nats.publisher.publish(subject, body("agent/input-added", { role: "user", content: `question ${turn}` }));
      const started = await nats.publisher.publish(subject, body("agent/llm-request-started", { model: "bench" }, `,"source":{"processor":"llm","causationOffset":${input.seq}}`));
      await nats.publisher.publish(subject, body("agent/llm-request-settled", { requestOffset: started.seq, result: { status: "succeeded", text: "answer", toolCalls: [], usage: { promptTokens: 10, completionTokens: 3 } } }, `,"source":{"processor":"llm","causationOffset":${started.seq}}`));
      await sleep(1000 / TURNS_PER_SECOND);
    }
  })();
  return { stop: async () => { control.stopped = true; await loop; } };
}

interface Round {
  tracing: "off" | "on";
  appendsPerSec: number;
  agentAppendsPerSec: number;
  hop: LatencySummary;
  spansReceived: number;
}

async function main(): Promise<void> {
  const server = await startNatsServer();
  const nats = await connectToEvents(loadProcessorConfig({ NATS_URL: server.url, LOG_LEVEL: "error" }), "bench-traces", createLogger("bench", "error"));
  let spansRequests = 0;
  const sink = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      spansRequests += 1;
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
  const address = sink.address();
  const endpoint = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
  const gateway = await startGatewayProcess({ natsUrl: server.url, env: { BREAKER_MAX_EVENTS_PER_SECOND: "1000000", BREAKER_BURST: "1000000" }, onLog: () => undefined });
  const worker = startService("test/support/processes/slow-worker.ts", { NATS_URL: server.url, SLOW_WORKER_NAME: "bench-trace-hop", SLOW_WORKER_DELAY_MS: "0", SLOW_WORKER_FILTER: "events.bench.hop", SLOW_WORKER_SERIALISE: "false" });
  const rounds: Round[] = [];
  const turns = feedTurns(nats);
  try {
    await waitPulling(nats, "processor-bench-trace-hop");
    for (let round = 1; round <= ROUNDS; round++) {
      for (const tracing of ["off", "on"] as const) {
        let traces: ChildProcess | undefined;
        const name = `bench-traces-${round}`;
        if (tracing === "on") {
          traces = startService("processors/traces/main.ts", { NATS_URL: server.url, PROCESSOR_NAME: name, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
          await waitPulling(nats, `processor-${name}`);
        }
        const requestsBefore = spansRequests;
        progress(`round ${round}, tracing ${tracing}: appends/s`);
        const appends = await appendThroughput({ baseUrl: gateway.url, path: `/bench/appends-${round}-${tracing}`, connections: 16, seconds: 5, eventsPerRequest: 1 });
        progress(`round ${round}, tracing ${tracing}: agent appends/s`);
        const agentBody = JSON.stringify({ type: "agent/input-added", payload: { role: "user", content: "context for later", trigger: "none" } });
        const agent = await postLoad({ url: `${gateway.url}/streams/bench/agent-${round}-${tracing}`, contentType: "application/json", body: agentBody, connections: 16, seconds: 5 });
        progress(`round ${round}, tracing ${tracing}: hop (100/s, ${HOP_MEASURED} measured after ${HOP_WARM_UP})`);
        const latency = await hop(nats, "events.bench.hop");
        rounds.push({ tracing, appendsPerSec: appends.eventsPerSec, agentAppendsPerSec: Math.round(agent["2xx"] / agent.duration), hop: latency, spansReceived: spansRequests - requestsBefore });
        if (traces !== undefined) {
          await stopChild(traces);
          await nats.jsm.consumers.delete(nats.streamName, `processor-${name}`).catch(() => undefined);
        }
      }
    }
  } finally {
    await turns.stop();
    await stopChild(worker);
    await gateway.stop();
    sink.close();
    await nats.nc.close();
    await server.stop();
  }
  const of = (tracing: "off" | "on") => rounds.filter((r) => r.tracing === tracing);
  const range = (values: number[], digits = 0): string => `${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)}`;
  const table = (["off", "on"] as const)
    .map((t) => `| ${t} | ${range(of(t).map((r) => r.appendsPerSec))} | ${range(of(t).map((r) => r.agentAppendsPerSec))} | ${range(of(t).map((r) => r.hop.p50), 2)} | ${range(of(t).map((r) => r.hop.p99), 2)} | ${range(of(t).map((r) => r.spansReceived))} |`)
    .join("\n");
  print(`| tracing | appends/s, \`bench\` events | appends/s, \`agent/input-added\` | hop p50 ms | hop p99 ms | OTLP requests received in the round |\n|---|---|---|---|---|---|\n${table}`);
  print(`rounds: ${JSON.stringify(rounds.map((r) => ({ tracing: r.tracing, appendsPerSec: r.appendsPerSec, agentAppendsPerSec: r.agentAppendsPerSec, p50: r.hop.p50, p99: r.hop.p99, otlpRequests: r.spansReceived })))}`);
  mkdirSync(join(REPO_ROOT, ".data"), { recursive: true });
  writeFileSync(join(REPO_ROOT, ".data", "bench-traces.json"), JSON.stringify({ rounds }, null, 2));
}

await main();
