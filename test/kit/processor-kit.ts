/**
 * `npm run test:processor -- --command "<how to start your processor>" --name <name> --reacts-to <type> --answers <type> [--http]`
 *
 * The conformance kit for processors (docs/EVENTS.md, "A processor in another language"): black-box scenarios run
 * against any processor process, in any language. It starts its own nats-server (a 2 s duplicate window, so
 * redeliveries after it are quick to stage) and a gateway, starts the processor with NATS_URL, AGENTMESH_URL,
 * PROCESSOR_NAME and STATE_DIR in its environment, appends triggers over HTTP and reads the reactions back from the
 * log. A processor on NATS is ready when it pulls from its durable consumer; one over HTTP (`--http`) when it holds an
 * SSE tail, and it keeps its cursor in STATE_DIR. It prints a pass/fail table and exits 1 if any scenario failed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { buildApp } from "../../gateway/app.js";
import { loadGatewayConfig } from "../../gateway/config.js";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { ConsumerNames } from "../../shared/contract/wire.js";
import { StreamIndexes } from "../../shared/log/stream-indexes.js";
import { connectToEvents } from "../../shared/nats/events-stream.js";
import { createLogger } from "../../shared/service/logger.js";

const DUPLICATE_WINDOW_MS = 2_000;
const SETTLE_MS = 20_000;
/** Scenario 5's poison events, one per shape. */
const POISON_EVENTS = 3;

interface Options {
  command: string;
  name: string;
  reactsTo: string;
  answers: string;
  payload: unknown;
  consumer: string;
  http: boolean;
  quiet: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      command: { type: "string" },
      name: { type: "string" },
      "reacts-to": { type: "string" },
      answers: { type: "string" },
      payload: { type: "string", default: "{}" },
      consumer: { type: "string" },
      http: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
    },
    strict: true,
  });
  const missing = ["command", "name", "reacts-to", "answers"].filter((key) => values[key as keyof typeof values] === undefined);
  if (missing.length > 0) {
    process.stderr.write(`processor kit: missing ${missing.map((m) => `--${m}`).join(", ")}\nusage: npm run test:processor -- --command "<cmd>" --name <processor name> --reacts-to <type> --answers <type> [--payload <json with {i} for the trigger's number>] [--consumer <durable name>] [--http]\n`);
    process.exit(2);
  }
  const name = values.name as string;
  return {
    command: values.command as string,
    name,
    reactsTo: values["reacts-to"] as string,
    answers: values.answers as string,
    payload: JSON.parse(values.payload) as unknown,
    consumer: values.consumer ?? ConsumerNames.processor(name),
    http: values.http,
    quiet: values.quiet,
  };
}

/** The trigger payload with each field of the wrong type: strings become numbers, anything else a string. */
function mangled(template: unknown): unknown {
  if (typeof template !== "object" || template === null || Array.isArray(template)) return 12345;
  return Object.fromEntries(Object.entries(template).map(([field, value]) => [field, typeof value === "string" ? 12345 : ["poison"]]));
}

/** The trigger payload with every "{i}" in its strings replaced by the trigger's number (tool call ids differ). */
function payloadFor(template: unknown, i: number): unknown {
  return JSON.parse(JSON.stringify(template).replaceAll("{i}", String(i))) as unknown;
}

interface Result {
  scenario: string;
  passed: boolean | null;
  detail: string;
}

async function main(): Promise<void> {
  const opts = options();
  const say = (line: string): void => {
    if (!opts.quiet) process.stderr.write(`[kit] ${line}\n`);
  };
  const server = await startNatsServer();
  const config = loadGatewayConfig({ NATS_URL: server.url, LOG_LEVEL: "error", GATEWAY_PORT: "0", AUTH: "off", EVENTS_DUPLICATE_WINDOW_MS: String(DUPLICATE_WINDOW_MS), HOOKS_TIMESTAMP_TOLERANCE_S: "1", BREAKER_MAX_EVENTS_PER_SECOND: "100000" });
  const logger = createLogger("kit", "error");
  const nats = await connectToEvents(config, "processor-kit", logger);
  const indexes = await StreamIndexes.open(nats, logger, 1);
  const app = buildApp({ config, nats, indexes, logger });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  const gateway = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;

  // What the processor keeps across its restarts (an HTTP processor's cursor); a rewind starts it empty.
  const stateDir = mkdtempSync(join(tmpdir(), "agentmesh-kit-"));
  let child: ChildProcess | null = null;
  const start = (extraEnv: Record<string, string> = {}): void => {
    const env = { ...process.env, NATS_URL: server.url, AGENTMESH_URL: gateway, PROCESSOR_NAME: opts.name, STATE_DIR: stateDir, LOG_LEVEL: "error", ...extraEnv };
    child = spawn("sh", ["-c", opts.command], { env, stdio: ["ignore", "ignore", opts.quiet ? "ignore" : "inherit"], detached: true });
  };
  const isRunning = (): boolean => child !== null && child.exitCode === null && child.signalCode === null;
  /** Open SSE connections on the kit's gateway: an HTTP processor's tail (nothing else here tails). */
  const sseClients = async (): Promise<number> => {
    const metrics = await (await fetch(`${gateway}/metrics`)).text();
    return Number(/^agentmesh_sse_clients (\d+)/m.exec(metrics)?.[1] ?? "0");
  };
  /** kill -9 the processor and everything its command started (its process group). */
  const kill = async (): Promise<void> => {
    const running = child;
    if (running === null || running.pid === undefined) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    try {
      process.kill(-running.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    await exited;
    child = null;
    // Until the gateway sees the old tail close, it would pass for the next process's.
    for (const deadline = Date.now() + 5_000; opts.http && Date.now() < deadline && (await sseClients()) > 0; ) await sleep(50);
  };
  /** Ready: pulling from its durable consumer (NATS) or holding a tail (HTTP). */
  const pulling = async (): Promise<boolean> => {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (opts.http) {
        if ((await sseClients()) > 0) return true;
      } else {
        const info = await nats.jsm.consumers.info(nats.streamName, opts.consumer).catch(() => null);
        if (info !== null && info.num_waiting > 0) return true;
      }
      await sleep(100);
    }
    return false;
  };

  const post = async (path: string, body: unknown): Promise<Response> => fetch(`${gateway}/streams${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const trigger = async (path: string, i: number): Promise<EventEnvelope> => {
    const response = await post(path, { type: opts.reactsTo, payload: payloadFor(opts.payload, i) });
    if (response.status !== 201) throw new Error(`appending a trigger to ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as EventEnvelope;
  };
  const readAll = async (path: string): Promise<EventEnvelope[]> => {
    const events: EventEnvelope[] = [];
    for (let after = 0; ; ) {
      const response = await fetch(`${gateway}/streams${path}?after=${after}&limit=1000`);
      if (response.status === 404) return events;
      const page = (await response.json()) as { events: EventEnvelope[]; nextOffset: number; upToDate: boolean };
      events.push(...page.events);
      after = page.nextOffset;
      if (page.upToDate) return events;
    }
  };
  const reactionsIn = async (paths: string[]): Promise<EventEnvelope[]> => (await Promise.all(paths.map(readAll))).flat().filter((e) => e.type === opts.answers && e.source?.processor === opts.name);
  /**
   * Waits until every trigger has a reaction, then a moment more for any second one. An event in hand when its
   * processor was killed comes back only after the consumer's ack wait: that long, and SETTLE_MS more.
   */
  const settle = async (paths: string[], triggers: EventEnvelope[]): Promise<EventEnvelope[]> => {
    const ackWaitMs = opts.http ? 0 : ((await nats.jsm.consumers.info(nats.streamName, opts.consumer).catch(() => null))?.config.ack_wait ?? 0) / 1e6;
    const deadline = Date.now() + ackWaitMs + SETTLE_MS;
    for (;;) {
      const reactions = await reactionsIn(paths);
      const answered = new Set(reactions.map((r) => r.source?.causationOffset));
      if (triggers.every((t) => answered.has(t.offset)) || Date.now() > deadline) break;
      await sleep(200);
    }
    await sleep(1_000);
    return reactionsIn(paths);
  };
  /**
   * Whether the processor has taken every event stored so far. On NATS: nothing pending on its consumer, and at
   * most the poison events of scenario 5 in hand (a processor may retry them with growing pauses for minutes, as
   * docs/EVENTS.md says). Over HTTP, where its tail is handled in log order: a new event got its reaction.
   */
  const handledEverything = async (label: string): Promise<boolean> => {
    if (opts.http) {
      const marker = await trigger(`/kit/marker-${label}`, 0);
      return check([marker], await settle([`/kit/marker-${label}`], [marker])).length === 0;
    }
    // A message held by a replica that was killed comes back only after the consumer's ack wait.
    const ackWaitMs = ((await nats.jsm.consumers.info(nats.streamName, opts.consumer).catch(() => null))?.config.ack_wait ?? 0) / 1e6;
    const deadline = Date.now() + ackWaitMs + SETTLE_MS;
    while (Date.now() < deadline) {
      const now = await nats.jsm.consumers.info(nats.streamName, opts.consumer);
      if (now.num_pending === 0 && now.num_ack_pending <= POISON_EVENTS) return true;
      await sleep(200);
    }
    return false;
  };
  /** Reactions stored out of their triggers' order, per stream (what a crash may cause: docs/EVENTS.md). */
  const outOfOrder = (triggers: EventEnvelope[], reactions: EventEnvelope[]): string[] =>
    [...new Set(triggers.map((t) => t.streamPath))].flatMap((path) => {
      const order = reactions.filter((r) => r.streamPath === path).map((r) => r.source?.causationOffset ?? 0);
      return order.some((offset, i) => i > 0 && offset < (order[i - 1] ?? 0)) ? [`reactions on ${path} out of order: ${order.join(",")}`] : [];
    });
  /** Exactly one reaction per trigger, with source and key as the contract says; in trigger order per stream unless `anyOrder`. */
  const check = (triggers: EventEnvelope[], reactions: EventEnvelope[], anyOrder = false): string[] => {
    const problems: string[] = [];
    for (const t of triggers) {
      const mine = reactions.filter((r) => r.source?.causationOffset === t.offset);
      if (mine.length !== 1) problems.push(`${mine.length} reactions to ${t.streamPath}@${t.offset}`);
      const key = mine[0]?.idempotencyKey;
      if (mine.length === 1 && key !== `${opts.name}:${t.offset}:0`) problems.push(`key ${String(key)} for ${t.offset} (expected ${opts.name}:${t.offset}:0)`);
    }
    return anyOrder ? problems : [...problems, ...outOfOrder(triggers, reactions)];
  };
  const verdict = (scenario: string, problems: string[], ok: string): Result => ({ scenario, passed: problems.length === 0, detail: problems.length === 0 ? ok : problems.slice(0, 4).join("; ") + (problems.length > 4 ? ` (+${problems.length - 4} more)` : "") });

  const results: Result[] = [];
  try {
    say(`starting: ${opts.command}`);
    start();
    if (!(await pulling())) throw new Error(`the processor did not start ${opts.http ? "an SSE tail" : `pulling on ${opts.consumer}`} within 30 s`);

    // 1. One reaction per event, in order per stream, with source and key.
    say("scenario 1: one reaction per event");
    const basic = ["/kit/a", "/kit/b", "/kit/c"];
    const basicTriggers: EventEnvelope[] = [];
    for (let i = 0; i < 30; i++) basicTriggers.push(await trigger(basic[i % 3] as string, i));
    const basicReactions = await settle(basic, basicTriggers);
    results.push(verdict("one reaction per event, in order per stream, source and key as specified", check(basicTriggers, basicReactions), `${basicTriggers.length} events, one reaction each`));
    // How long the processor takes from an event to its reaction: scenario 4 times its races by it.
    const hops = basicTriggers.flatMap((t) => {
      const r = basicReactions.find((x) => x.source?.causationOffset === t.offset);
      return r === undefined ? [] : [Date.parse(r.createdAt) - Date.parse(t.createdAt)];
    });
    // The quickest quarter: later triggers of the burst waited behind earlier ones, which is not the hop.
    hops.sort((a, b) => a - b);
    const hopMs = hops.length === 0 ? 5 : Math.min(200, Math.max(2, Math.round(hops.slice(0, Math.ceil(hops.length / 4)).reduce((sum, h) => sum + h, 0) / Math.ceil(hops.length / 4))));

    // 2. kill -9 at random points while triggers arrive.
    say("scenario 2: kill -9 at random points");
    // Triggers keep coming, before, during and after each kill; each kill lands 0 to 5 ms after a trigger was stored,
    // while the processor is most likely handling it, and more arrive while it is down.
    const crash = ["/kit/crash-a", "/kit/crash-b"];
    const crashTriggers: EventEnvelope[] = [];
    const flowing = { on: true };
    const flow = (async () => {
      for (let i = 0; flowing.on; i++) {
        crashTriggers.push(await trigger(crash[i % 2] as string, i));
        await sleep(10 + Math.random() * 20);
      }
    })();
    for (let round = 0; round < 3; round++) {
      await sleep(100 + Math.random() * 300);
      crashTriggers.push(await trigger(crash[round % 2] as string, 1000 + round));
      await sleep(Math.random() * 5);
      await kill();
      await sleep(Math.random() * 200);
      start();
      await pulling();
    }
    await sleep(200);
    flowing.on = false;
    await flow;
    // Order is not promised across a crash (an event in hand comes back after the ack wait): reported, not failed.
    const crashReactions = await settle(crash, crashTriggers);
    const reordered = outOfOrder(crashTriggers, crashReactions).length > 0 ? "; reactions reordered by the crash, as docs/EVENTS.md allows" : "";
    results.push(verdict("exactly one reaction per event through kill -9 at random points", check(crashTriggers, crashReactions, true), `${crashTriggers.length} events, 3 kills, one reaction each${reordered}`));

    // 3. A busy stream: other writers append between the processor's read and its publish.
    say("scenario 3: a busy stream");
    const busy = ["/kit/busy"];
    const noise = (async () => {
      for (let n = 0; n < 60; n++) {
        await post("/kit/busy", Array.from({ length: 5 }, () => ({ type: "kit/noise", payload: {} })));
        await sleep(20);
      }
    })();
    const busyTriggers: EventEnvelope[] = [];
    for (let i = 0; i < 15; i++) {
      busyTriggers.push(await trigger("/kit/busy", i));
      await sleep(60);
    }
    await noise;
    results.push(verdict("every event answered once on a stream other writers keep moving", check(busyTriggers, await settle(busy, busyTriggers)), `${busyTriggers.length} events among 300 others`));

    // 4. A decision made on a stale state is made again: a pause lands while the processor decides. Both are
    // published straight to NATS (and the pause recorded in the pause index, as a writer on NATS must), the pause
    // from 0 to twice the processor's measured hop after the trigger is stored, so that some land before it reads
    // the stream, some between its read and its publish, and some after it answered.
    say(`scenario 4: a pause while deciding (hop ${hopMs} ms)`);
    const raced: { path: string; pauseOffset: number }[] = [];
    for (let i = 0; i < 24; i++) {
      const path = parseStreamPath(`/kit/stale-${i}`);
      await nats.js.publish(eventsSubject(path), JSON.stringify({ type: opts.reactsTo, payload: payloadFor(opts.payload, i), createdAt: new Date().toISOString() }));
      await sleep((i / 23) * 2 * hopMs);
      const createdAt = new Date().toISOString();
      const payload = { reason: "kit: paused while the processor decides" };
      const pause = await nats.js.publish(eventsSubject(path), JSON.stringify({ type: "stream/paused", payload, createdAt }));
      await indexes.observe(path, [{ streamPath: path, offset: pause.seq, type: "stream/paused", payload, createdAt }]);
      raced.push({ path, pauseOffset: pause.seq });
    }
    await sleep(3_000);
    const racedReactions = await reactionsIn(raced.map((r) => r.path));
    const afterPause = raced.filter((r) => racedReactions.some((x) => x.streamPath === r.path && x.offset > r.pauseOffset));
    const before = raced.filter((r) => racedReactions.some((x) => x.streamPath === r.path && x.offset < r.pauseOffset)).length;
    results.push(
      verdict(
        "a decision the state moved under is made again (a pause stored while deciding stops the reaction)",
        afterPause.map((r) => `reaction stored after the pause on ${r.path} (pause at ${r.pauseOffset})`),
        `${raced.length} races over 0-${2 * hopMs} ms: ${before} answered before their pause, ${raced.length - before} not answered, none after a pause`,
      ),
    );

    // 5. A poison event (a body the gateway would refuse, published straight to NATS) does not hold the others.
    say("scenario 5: a poison event");
    // Three shapes: a payload that is not an object, none at all, and the expected fields with the wrong types.
    const poisons: unknown[] = ["poison: not the payload you expect", null, mangled(opts.payload)].slice(0, POISON_EVENTS);
    for (const [n, payload] of poisons.entries()) {
      await nats.js.publish(eventsSubject(parseStreamPath(`/kit/poison-${n}`)), JSON.stringify({ type: opts.reactsTo, payload, createdAt: new Date().toISOString() }));
    }
    const others = ["/kit/after-poison-a", "/kit/after-poison-b"];
    const otherTriggers: EventEnvelope[] = [];
    for (let i = 0; i < 6; i++) otherTriggers.push(await trigger(others[i % 2] as string, i));
    const othersAnswered = check(otherTriggers, await settle(others, otherTriggers));
    const alive = isRunning();
    results.push(
      verdict(
        "a poison event does not block the others",
        [...othersAnswered, ...(alive ? [] : ["the processor exited"])],
        `${otherTriggers.length} events on other streams answered after ${poisons.length} poison events (a string payload, none, the fields of the wrong types)`,
      ),
    );

    // 6. Paused: no reaction while paused; after resume, what the contract says (no late reaction).
    say("scenario 6: pause");
    await kill();
    const paused = "/kit/paused";
    const pausedTriggers = [await trigger(paused, 0), await trigger(paused, 1), await trigger(paused, 2)];
    const pause = await post(paused, { type: "stream/paused", payload: { reason: "kit" } });
    if (pause.status !== 201) throw new Error(`pausing: ${pause.status}`);
    start();
    await pulling();
    // The processor has taken every event stored so far before the stream is resumed.
    const tookThem = await handledEverything("paused");
    const toPaused = async (): Promise<EventEnvelope[]> => (await reactionsIn([paused])).filter((r) => pausedTriggers.some((t) => t.offset === r.source?.causationOffset));
    const whilePaused = await toPaused();
    const resume = await post(`${paused}/resume`, { reason: "kit" });
    if (resume.status !== 201) throw new Error(`resuming: ${resume.status}`);
    await sleep(3_000);
    // A reaction to the resume itself (taking up what is open, as docs/EVENTS.md suggests) is allowed: not counted.
    const afterResume = await toPaused();
    results.push(verdict("no reaction while the stream is paused", [...(tookThem ? [] : ["the processor did not take the events stored while it was down"]), ...(whilePaused.length === 0 ? [] : [`${whilePaused.length} reactions while paused`])], "none"));
    results.push(
      verdict(
        "events skipped while paused are not reacted to after resume (docs/EVENTS.md)",
        afterResume.length === 0 ? [] : [`${afterResume.length} reactions after resume to events ${pausedTriggers.map((t) => t.offset).join(",")}`],
        "none",
      ),
    );

    // 7. Redelivery after the duplicate window: the processor is rewound to the first trigger of scenario 1.
    say("scenario 7: redelivery after the duplicate window");
    await kill();
    await sleep(DUPLICATE_WINDOW_MS + 500);
    const firstOffset = (basicTriggers[0] as EventEnvelope).offset;
    let rewoundPulling: boolean;
    let drained = false;
    if (opts.http) {
      // An HTTP processor's position is its cursor: start it without one, after the offset before the first trigger.
      rmSync(stateDir, { recursive: true, force: true });
      start({ START_AFTER: String(firstOffset - 1) });
      rewoundPulling = await pulling();
      drained = await handledEverything("rewound");
    } else {
      const info = await nats.jsm.consumers.info(nats.streamName, opts.consumer);
      await nats.jsm.consumers.delete(nats.streamName, opts.consumer);
      // The same consumer, starting again at scenario 1's first trigger (2.9 cannot move a consumer back in place).
      const kept = Object.fromEntries(Object.entries(info.config).filter(([field]) => !["deliver_policy", "opt_start_seq", "opt_start_time"].includes(field)));
      await nats.jsm.consumers.add(nats.streamName, { ...kept, deliver_policy: "by_start_sequence", opt_start_seq: firstOffset });
      start();
      rewoundPulling = await pulling();
      // The rewound consumer delivers everything since again: wait until it has caught up, then count.
      drained = await handledEverything("rewound");
    }
    await sleep(1_000);
    const notTaken = rewoundPulling && drained ? [] : [`the processor did not take the events delivered again (${rewoundPulling ? "it pulled, but left events pending" : "it never pulled from the rewound consumer"})`];
    results.push(verdict("no second reaction when events are delivered again after the duplicate window", [...notTaken, ...check(basicTriggers, await reactionsIn(basic))], `${basicTriggers.length} events delivered again, still one reaction each`));
  } catch (err) {
    results.push({ scenario: "the kit itself", passed: false, detail: err instanceof Error ? err.message : String(err) });
  } finally {
    await kill();
    await app.close();
    indexes.close();
    await nats.nc.close();
    await server.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }

  const width = Math.max(...results.map((r) => r.scenario.length));
  process.stdout.write(`\nprocessor kit: ${opts.name} (${opts.command})\n`);
  for (const r of results) process.stdout.write(`${r.passed === true ? "PASS" : r.passed === false ? "FAIL" : "SKIP"}  ${r.scenario.padEnd(width)}  ${r.detail}\n`);
  const failed = results.filter((r) => r.passed === false).length;
  process.stdout.write(`${results.length - failed} passed, ${failed} failed\n`);
  process.exitCode = failed > 0 ? 1 : 0;
}

main().catch((err: unknown) => {
  process.stderr.write(`processor kit: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
