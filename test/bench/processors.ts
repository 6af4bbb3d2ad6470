/**
 * `npm run bench` part two: processors beside the raw JetStream work they stand on, side by side in one run, every
 * process its own (issue #13, "processors as fast as the log"):
 *   - hop: a trigger stored -> the reaction of a trivial processor stored, 100 events/s, against a bare client's
 *     durable pull consumer that publishes its reaction (test/bench/support/raw-consumer-main.ts); rounds alternate;
 *     then, for context, the same processor with its decisions serialised (the runtime's default);
 *   - backlog drain: 100,000 stored events no processor reacts to, drained by the llm processor and by a bare
 *     durable pull consumer that only acks (the breaker, which must see every event, beside them);
 *   - the breaker under a flood: how long after its tripping event each of 100 streams is paused while 100,000
 *     events arrive at full speed and the llm processor runs beside it;
 *   - cold start: a reaction of the llm processor on an agent stream that already holds a conversation of 100,000
 *     events (33,333 turns: input, request started, request settled), the first time it sees the stream, then
 *     warm, then after a restart.
 * Triggers are published and reactions observed with a bare NATS client (JetStream publish; an ordered consumer
 * sees a reaction once it is stored), so the HTTP gateway is not part of these figures.
 * Results: stdout and .data/bench-processors.json.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DeliverPolicy, type ConsumerMessages } from "@nats-io/jetstream";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import { connectToEvents } from "../../shared/nats/events-stream.js";
import type { Nats } from "../../shared/nats/connection.js";
import { createLogger } from "../../shared/service/logger.js";
import { loadProcessorConfig } from "../../processors/runtime/config.js";
import { buildGoTools } from "../../deploy/local/go-tools.js";
import { REPO_ROOT, stopChild } from "./support/gateway-process.js";
import { print, progress } from "./support/log.js";
import { until } from "./support/until.js";
import { perSecond, summarise, type LatencySummary } from "./support/stats.js";

const BACKLOG = 100_000;
const HOP_INTERVAL_MS = 10;
// Untimed first: the processes were just started, and their first few hundred events run unoptimised code.
const HOP_WARM_UP = 300;
const HOP_MEASURED = 500;

interface Service {
  child: ChildProcess;
  stop(): Promise<void>;
}

function startService(entry: string, env: Record<string, string>): Service {
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, entry)], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: "error", ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  return { child, stop: () => stopChild(child) };
}

/** A durable consumer with a pull waiting: its process is ready to take events. */
async function waitPulling(nats: Nats, durable: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await nats.jsm.consumers.info(nats.streamName, durable).catch(() => null);
    if (info !== null && info.num_waiting > 0) return;
    if (Date.now() > deadline) throw new Error(`${durable}: not pulling within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function body(type: string, payload: unknown, extra = ""): Uint8Array {
  return Buffer.from(`{"type":"${type}","payload":${JSON.stringify(payload)},"createdAt":"${new Date().toISOString()}"${extra}}`);
}

/** Publish `count` events of `subjectOf(i)`, a window of them in flight. */
async function publishMany(nats: Nats, count: number, subjectOf: (i: number) => string, type: string): Promise<void> {
  const payload = { data: randomBytes(96).toString("hex").slice(0, 180) };
  const window = 2000;
  for (let start = 0; start < count; start += window) {
    const acks: Promise<unknown>[] = [];
    for (let i = start; i < Math.min(count, start + window); i++) acks.push(nats.publisher.publish(subjectOf(i), body(type, payload)));
    await Promise.all(acks);
  }
}

/**
 * A conversation of `turns` turns (user input, request started, request settled with an answer) on one subject,
 * as the llm processor would have left it (its reactions with their `source` and key). Published in order on one connection with nothing else publishing, so
 * the i-th message's offset is the first one's plus i: each settlement names its request's offset.
 */
async function publishConversation(nats: Nats, subject: string, turns: number): Promise<void> {
  const text = "x".repeat(100);
  // As the llm processor stores its reactions: marked with their cause and keyed by it.
  const reactionTo = (cause: number): string => `,"source":{"processor":"llm","causationOffset":${cause}},"idempotencyKey":"llm:${cause}:0"`;
  const base = (await nats.publisher.publish(subject, body("agent/configured", {}))).seq + 1;
  const window = 3000;
  const total = turns * 3;
  let last = 0;
  for (let start = 0; start < total; start += window) {
    const acks: Promise<{ seq: number }>[] = [];
    for (let i = start; i < Math.min(total, start + window); i++) {
      const turn = Math.floor(i / 3);
      const message =
        i % 3 === 0
          ? body("agent/input-added", { role: "user", content: `question ${turn} ${text}`, trigger: "none" })
          : i % 3 === 1
            ? body("agent/llm-request-started", { model: "bench" }, reactionTo(base + i - 1))
            : body("agent/llm-request-settled", { requestOffset: base + i - 1, result: { status: "succeeded", text: `answer ${turn} ${text}`, toolCalls: [], usage: null } }, reactionTo(base + i - 1));
      acks.push(nats.publisher.publish(subject, message));
    }
    last = (await Promise.all(acks)).at(-1)?.seq ?? last;
  }
  if (last !== base + total - 1) throw new Error(`the conversation's offsets are not consecutive (${base}..${last} for ${total}): something else published meanwhile`);
}

/** Stored events of one subject from now on, as they are stored: (type, causation offset, arrival time). */
async function observe(nats: Nats, subject: string, onEvent: (type: string, causation: number | undefined, at: number) => void): Promise<ConsumerMessages> {
  const consumer = await nats.js.consumers.get(nats.streamName, { filter_subjects: subject, deliver_policy: DeliverPolicy.New });
  const messages = await consumer.consume({ max_messages: 256 });
  void (async () => {
    for await (const m of messages) {
      const at = performance.now();
      const event = JSON.parse(Buffer.from(m.data).toString("utf8")) as { type: string; source?: { causationOffset?: number } };
      onEvent(event.type, event.source?.causationOffset, at);
    }
  })();
  return messages;
}


/** What a hop sends: a `job/requested` unless told otherwise (the Go example answers tool calls). */
type Trigger = { type: string; payload: (i: number) => unknown };
const JOB: Trigger = { type: "job/requested", payload: (i) => ({ i }) };

/** Triggers at 100/s on `subject`; each one's time to its reaction (`reactionType`, caused by it) being stored. */
async function hop(nats: Nats, subject: string, reactionType: string, trigger: Trigger = JOB): Promise<LatencySummary> {
  const reactedAt = new Map<number, number>();
  const observer = await observe(nats, subject, (type, causation, at) => {
    if (type === reactionType && causation !== undefined) reactedAt.set(causation, at);
  });
  const run = async (count: number): Promise<number[]> => {
    const sentAt = new Map<number, number>();
    const acks: Promise<void>[] = [];
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      // Open loop: trigger i is due at i * interval whatever the reactions did.
      const due = started + i * HOP_INTERVAL_MS;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const at = performance.now();
      acks.push(nats.publisher.publish(subject, body(trigger.type, trigger.payload(i))).then((ack) => void sentAt.set(ack.seq, at)));
    }
    await Promise.all(acks);
    await until(() => [...sentAt.keys()].every((offset) => reactedAt.has(offset)), 60_000, `${subject}: every reaction`, 5);
    return [...sentAt].map(([offset, at]) => (reactedAt.get(offset) as number) - at);
  };
  await run(HOP_WARM_UP);
  const latencies = await run(HOP_MEASURED);
  observer.stop();
  return summarise(latencies);
}

interface DrainResult {
  events: number;
  seconds: number;
  perSec: number;
}

/**
 * Start a stopped consumer's process on a backlog and time it from its first acknowledgement to nothing pending,
 * read from the server's consumer info every 20 ms (so the process's start-up is not counted).
 */
async function drain(nats: Nats, durable: string, start: () => Service): Promise<{ result: DrainResult; service: Service }> {
  const before = await nats.jsm.consumers.info(nats.streamName, durable);
  const base = before.ack_floor.stream_seq;
  const service = start();
  let firstAt = 0;
  let firstFloor = 0;
  const deadline = Date.now() + 300_000;
  for (;;) {
    const info = await nats.jsm.consumers.info(nats.streamName, durable);
    const now = performance.now();
    if (firstAt === 0 && info.ack_floor.stream_seq > base) {
      firstAt = now;
      firstFloor = info.ack_floor.consumer_seq;
    }
    if (firstAt !== 0 && info.num_pending === 0 && info.num_ack_pending === 0) {
      const events = info.ack_floor.consumer_seq - firstFloor;
      return { result: { events, seconds: (now - firstAt) / 1000, perSec: perSecond(events, now - firstAt) }, service };
    }
    if (Date.now() > deadline) throw new Error(`${durable}: backlog not drained within 300 s`);
    await sleep(20);
  }
}

/**
 * The breaker (default limits: 100 events/s, burst 100) with the llm processor beside it while 100,000 events are
 * stored as fast as one client can, 1,000 on each of 100 streams: each stream trips at its 101st event. The delay is
 * each pause's `createdAt` minus its tripping event's (both stamped on this machine's clock when written).
 */
async function breakerUnderFlood(nats: Nats): Promise<{ streams: number; delay: LatencySummary; floodSeconds: number }> {
  const pauses = new Map<string, { createdAt: string; triggerOffset: number }>();
  const watch = nats.nc.subscribe("events.bench.>", {
    callback: (_err, msg) => {
      if (!msg.subject.startsWith("events.bench.flood-")) return;
      const event = JSON.parse(msg.string()) as { type: string; createdAt: string; payload: { triggerOffset?: number } };
      if (event.type === "stream/paused" && event.payload.triggerOffset !== undefined && !pauses.has(msg.subject)) pauses.set(msg.subject, { createdAt: event.createdAt, triggerOffset: event.payload.triggerOffset });
    },
  });
  await nats.nc.flush();
  const started = performance.now();
  await publishMany(nats, BACKLOG, (i) => `events.bench.flood-${i % 100}`, "bench/flood");
  const floodSeconds = (performance.now() - started) / 1000;
  await until(() => pauses.size === 100, 120_000, "a pause on every flooded stream");
  watch.unsubscribe();
  const delays: number[] = [];
  for (const pause of pauses.values()) {
    const trigger = await nats.jsm.direct.getMessage(nats.streamName, { seq: pause.triggerOffset });
    if (trigger === null) throw new Error(`the tripping event ${pause.triggerOffset} is not stored`);
    delays.push(Date.parse(pause.createdAt) - Date.parse((trigger.json<{ createdAt: string }>()).createdAt));
  }
  return { streams: pauses.size, delay: summarise(delays), floodSeconds };
}

/** Append an agent input to `path`'s subject; the time until the llm processor's `agent/llm-request-started` for it is stored, then until its request settles. */
async function llmReaction(nats: Nats, subject: string, text: string): Promise<number> {
  let started = 0;
  let settled = false;
  let inputOffset = -1;
  const observer = await observe(nats, subject, (type, causation, at) => {
    if (type === "agent/llm-request-started" && causation === inputOffset) {
      started = at;
    }
    if (type === "agent/llm-request-settled") settled = true;
  });
  const at = performance.now();
  const ack = await nats.publisher.publish(subject, body("agent/input-added", { role: "user", content: text }));
  inputOffset = ack.seq;
  await until(() => started !== 0, 60_000, `llm reaction on ${subject}`, 5);
  await until(() => settled, 60_000, `llm request settled on ${subject} (input at ${inputOffset})`);
  observer.stop();
  return started - at;
}

type Hops = { raw: LatencySummary[]; processor: LatencySummary[]; go: LatencySummary[]; serialised: LatencySummary[] };

const ms = (v: number): string => `${v.toFixed(2)} ms`;

function hopTable(hops: Hops): string {
  const hopLine = (s: LatencySummary): string => `${ms(s.p50)} / ${ms(s.p99)} (max ${ms(s.max)})`;
  const over = (a: LatencySummary[], b: LatencySummary[]) => (i: number): string => `${((a[i] as LatencySummary).p50 / (b[i] as LatencySummary).p50).toFixed(2)}x`;
  const ratio = over(hops.processor, hops.raw);
  const goRatio = over(hops.go, hops.processor);
  return `hop, raw durable consumer + publish, 100/s, p50 / p99     | ${hops.raw.map(hopLine).join("; ")}
hop, processor runtime (trivial reaction), p50 / p99      | ${hops.processor.map(hopLine).join("; ")}
hop, processor p50 / raw p50, each round                  | ${ratio(0)}; ${ratio(1)}
hop, Go example (nats.go, no runtime), p50 / p99          | ${hops.go.map(hopLine).join("; ")}
hop, Go example p50 / processor p50, each round           | ${goRatio(0)}; ${goRatio(1)}
hop, serialised decisions (context), p50 / p99            | ${hops.serialised.map(hopLine).join("; ")}`;
}

/** `--only-hop`: the hop figures alone (a minute instead of several). */
const ONLY_HOP = process.argv.includes("--only-hop");

async function main(): Promise<void> {
  const server = await startNatsServer();
  const services: Service[] = [];
  const config = loadProcessorConfig({ NATS_URL: server.url, LOG_LEVEL: "error" });
  const nats = await connectToEvents(config, "bench-processors", createLogger("bench", "error"));
  const natsEnv = { NATS_URL: server.url };
  const llmEnv = { ...natsEnv, SECRETS_KEYS: `bench:${randomBytes(32).toString("base64")}` };
  const run = (entry: string, env: Record<string, string>): Service => {
    const service = startService(entry, env);
    services.push(service);
    return service;
  };
  try {
    progress(`storing a conversation of ${BACKLOG.toLocaleString("en")} events on /bench/cold (history for the cold start)`);
    await publishConversation(nats, "events.bench.cold", Math.floor(BACKLOG / 3));

    const hops: Hops = { raw: [], processor: [], go: [], serialised: [] };
    const rawHop = run("test/bench/support/raw-consumer-main.ts", { ...natsEnv, RAW_MODE: "hop", RAW_DURABLE: "raw-hop", RAW_FILTER: "events.bench.hop-raw" });
    const processorHop = run("test/support/processes/slow-worker.ts", { ...natsEnv, SLOW_WORKER_NAME: "bench-hop", SLOW_WORKER_DELAY_MS: "0", SLOW_WORKER_FILTER: "events.bench.hop-processor", SLOW_WORKER_SERIALISE: "false" });
    // The Go example processor (processors/examples/go-tools: nats.go only, no runtime), as an outside developer
    // writes one from docs/EVENTS.md: its hop beside ours (issue #18).
    progress("building the Go example processor");
    const goBinary = await buildGoTools();
    const goChild = spawn(goBinary, [], { cwd: REPO_ROOT, env: { ...process.env, ...natsEnv, PROCESSOR_NAME: "bench-go", PROCESSOR_SUBJECT_FILTER: "events.bench.hop-go" }, stdio: ["ignore", "ignore", "ignore"] });
    const goHop: Service = { child: goChild, stop: () => stopChild(goChild) };
    services.push(goHop);
    const toolCall: Trigger = { type: "agent/tool-call-requested", payload: (i) => ({ requestOffset: 1, callId: `call-${i}`, name: "calculate", arguments: '{"expression":"6*7"}' }) };
    await waitPulling(nats, "raw-hop");
    await waitPulling(nats, "processor-bench-hop");
    await waitPulling(nats, "processor-bench-go");
    for (let round = 1; round <= 2; round++) {
      progress(`hop round ${round}: raw, then processor, then the Go example (100 events/s, ${HOP_MEASURED} measured after ${HOP_WARM_UP})`);
      hops.raw.push(await hop(nats, "events.bench.hop-raw", "job/done"));
      hops.processor.push(await hop(nats, "events.bench.hop-processor", "job/done"));
      hops.go.push(await hop(nats, "events.bench.hop-go", "agent/tool-call-settled", toolCall));
    }
    await rawHop.stop();
    await processorHop.stop();
    await goHop.stop();
    // Context: the same reaction committed with the stream's expected last offset (the runtime's default).
    const serialisedHop = run("test/support/processes/slow-worker.ts", { ...natsEnv, SLOW_WORKER_NAME: "bench-hop-serialised", SLOW_WORKER_DELAY_MS: "0", SLOW_WORKER_FILTER: "events.bench.hop-serialised", SLOW_WORKER_SERIALISE: "true" });
    await waitPulling(nats, "processor-bench-hop-serialised");
    progress("hop with serialised decisions (context)");
    hops.serialised.push(await hop(nats, "events.bench.hop-serialised", "job/done"));
    await serialisedHop.stop();
    if (ONLY_HOP) {
      print(`\nfigure                                                  | value\n------------------------------------------------------- | ------------------------------\n${hopTable(hops)}\n`);
      return;
    }

    progress("backlog drain: creating the durable consumers, then storing the backlog while they are stopped");
    // Two of each, drained alternately from the same backlog: the server reads the same blocks for each.
    const drainers = {
      raw: (round: number): Service => run("test/bench/support/raw-consumer-main.ts", { ...natsEnv, RAW_MODE: "drain", RAW_DURABLE: `raw-drain-${round}`, RAW_FILTER: "" }),
      llm: (round: number): Service => run("processors/llm/main.ts", { ...llmEnv, PROCESSOR_NAME: `llm-drain-${round}` }),
      breaker: (round: number): Service => run("processors/breaker/main.ts", { ...natsEnv, PROCESSOR_NAME: `breaker-drain-${round}` }),
    };
    const durableOf = { raw: (round: number) => `raw-drain-${round}`, llm: (round: number) => `processor-llm-drain-${round}`, breaker: (round: number) => `processor-breaker-drain-${round}` };
    const order = [["raw", 1], ["llm", 1], ["breaker", 1], ["raw", 2], ["llm", 2]] as const;
    for (const [kind, round] of order) {
      const service = drainers[kind](round);
      await waitPulling(nats, durableOf[kind](round));
      await service.stop();
    }
    await publishMany(nats, BACKLOG, (i) => `events.bench.drain-${i % 100}`, "bench/noise");
    const drains: Record<"raw" | "llm" | "breaker", DrainResult[]> = { raw: [], llm: [], breaker: [] };
    for (const [kind, round] of order) {
      progress(`backlog drain: ${kind} (round ${round})`);
      const drained = await drain(nats, durableOf[kind](round), () => drainers[kind](round));
      drains[kind].push(drained.result);
      await drained.service.stop();
    }

    const startLlm = (): Service => run("processors/llm/main.ts", llmEnv);
    const llm = startLlm();
    await waitPulling(nats, "processor-llm");
    progress("cold start: the llm processor's first reaction on a conversation of 100,000 events");
    const first = await llmReaction(nats, "events.bench.cold", "first");
    const warm = await llmReaction(nats, "events.bench.cold", "warm");
    await llm.stop();
    const restarted = startLlm();
    await waitPulling(nats, "processor-llm");
    progress("cold start: after a restart");
    const afterRestart = await llmReaction(nats, "events.bench.cold", "after restart");

    const breaker = run("processors/breaker/main.ts", natsEnv);
    await waitPulling(nats, "processor-breaker");
    progress(`breaker under a flood: ${BACKLOG.toLocaleString("en")} events at full speed over 100 streams, the llm processor running too`);
    const flood = await breakerUnderFlood(nats);
    await breaker.stop();
    await restarted.stop();

    const results = {
      hop: hops,
      drain: drains,
      coldStart: { firstMs: first, afterRestartMs: afterRestart, warmMs: warm, historyEvents: BACKLOG },
      breakerUnderFlood: flood,
    };
    mkdirSync(join(REPO_ROOT, ".data"), { recursive: true });
    writeFileSync(join(REPO_ROOT, ".data", "bench-processors.json"), JSON.stringify(results, null, 2));
    const pct = (a: number, b: number): string => `${Math.round((a / b) * 100)}%`;
    print(`
figure                                                  | value
------------------------------------------------------- | ------------------------------
${hopTable(hops)}
drain of ${BACKLOG.toLocaleString("en")}, raw consumer (ack only), rounds 1, 2 | ${drains.raw.map((d) => `${d.perSec.toLocaleString("en")} ev/s`).join(", ")}
drain, llm processor, rounds 1, 2 (of raw, same round)      | ${drains.llm.map((d, i) => `${d.perSec.toLocaleString("en")} ev/s (${pct(d.perSec, (drains.raw[i] as DrainResult).perSec)})`).join(", ")}
drain, breaker (sees every event), round 1                | ${drains.breaker.map((d) => `${d.perSec.toLocaleString("en")} ev/s (${pct(d.perSec, (drains.raw[0] as DrainResult).perSec)})`).join(", ")}
cold start, conversation of 100,000 events: first / after restart / warm | ${ms(first)} / ${ms(afterRestart)} / ${ms(warm)}
breaker under a flood: pause after the tripping event, p50 / max | ${ms(flood.delay.p50)} / ${ms(flood.delay.max)} (${flood.streams} streams; flood stored in ${flood.floodSeconds.toFixed(2)} s)
`);
  } finally {
    await Promise.all(services.map((s) => s.stop()));
    await nats.nc.close();
    await server.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench (processors) failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
