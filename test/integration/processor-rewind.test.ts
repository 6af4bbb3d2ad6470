import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AckPolicy, DeliverPolicy, type ConsumerInfo } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { ProcessorRewoundBody } from "../../shared/contract/http-bodies.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { ConsumerNames } from "../../shared/contract/wire.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll, runProcessor, uniqueName, waitFor, waitForConsumer, waitForSettledProcessor } from "../support/processors.js";

/**
 * `POST /processors/<name>/rewind` and `agentmesh processors rewind` against a real nats-server and gateway, with the
 * processor's replicas running as OS processes (test/support/processes/rewind-worker.ts) while it happens.
 */
const ROOT = process.cwd();
const WORKER = join(ROOT, "test", "support", "processes", "rewind-worker.ts");
const CLI = join(ROOT, "gateway", "cli", "agentmesh.mjs");

let gw: TestGateway;
const children: ChildProcess[] = [];
const inProcess: RunningProcessor[] = [];
const scratch = mkdtempSync(join(tmpdir(), "rewind-"));

beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await Promise.all(inProcess.map((p) => p.stop()));
  await gw.close();
  rmSync(scratch, { recursive: true, force: true });
});

interface Replica {
  child: ChildProcess;
  /** Offsets whose event reached the worker's `react`, in order. */
  reacting: () => number[];
  /** Offsets the runtime delivered and recognised as already reacted to (its debug line), in order. */
  recognised: () => number[];
}

function spawnReplica(env: Record<string, string>): Replica {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER], { cwd: ROOT, env: { ...process.env, NATS_URL: inject("natsUrl"), LOG_LEVEL: "debug", HEALTH_PORT: "0", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const reacting: number[] = [];
  const recognised: number[] = [];
  let rest = "";
  child.stdout.on("data", (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      const react = /^REACTING (\d+)$/.exec(line);
      if (react?.[1] !== undefined) reacting.push(Number(react[1]));
      else if (line.startsWith("{")) {
        const entry = JSON.parse(line) as { msg?: string; offset?: number };
        if (entry.msg === "already reacted to this event (redelivery)" && entry.offset !== undefined) recognised.push(entry.offset);
      }
    }
  });
  return { child, reacting: () => [...reacting], recognised: () => [...recognised] };
}

const info = (name: string): Promise<ConsumerInfo> => gw.nats.jsm.consumers.info(gw.nats.streamName, ConsumerNames.processor(name));
const rewind = (name: string, body: unknown) => request<ProcessorRewoundBody & { error?: { code: string; message: string } }>(`${gw.url}/processors/${name}/rewind`, { body });

async function append(path: string, body: unknown): Promise<EventEnvelope[]> {
  const reply = await request<EventEnvelope | EventEnvelope[]>(`${gw.url}/streams${path}`, { body });
  if (reply.status !== 201) throw new Error(`append: ${reply.status} ${JSON.stringify(reply.body)}`);
  return [reply.body].flat();
}

async function readPaths(paths: string[]): Promise<EventEnvelope[]> {
  return (await Promise.all(paths.map((p) => readAll(gw.url, p)))).flat().sort((a, b) => a.offset - b.offset);
}

/** `job/done` reactions per job offset. */
function answers(events: EventEnvelope[]): Map<number, number> {
  const count = new Map<number, number>();
  for (const e of events) if (e.type === "job/done" && e.source !== undefined) count.set(e.source.causationOffset, (count.get(e.source.causationOffset) ?? 0) + 1);
  return count;
}

/** Once `answered` jobs under `paths` have their answer, wait until the consumer has nothing left through the last of them. */
async function settle(name: string, paths: string[], answered: number): Promise<EventEnvelope[]> {
  const all = await waitFor(async () => {
    const read = await readPaths(paths);
    return answers(read).size >= answered ? read : undefined;
  }, 30_000, `${answered} jobs answered`);
  await waitForSettledProcessor(gw.nats, name, lastOf(all), 30_000);
  return readPaths(paths);
}

const jobs = (events: EventEnvelope[]) => events.filter((e) => e.type === "job/requested");
const isTricky = (e: EventEnvelope) => (e.payload as { tricky?: boolean }).tricky === true;
const lastOf = (events: EventEnvelope[]) => events.at(-1)?.offset ?? 0;

describe("rewinding a processor", () => {
  it("with 3 replicas running: every event is delivered again, nothing answered twice, the fixed events answered, and every replica goes on", async () => {
    const root = uniquePath("rewind");
    const name = uniqueName("rewound");
    const fixed = join(scratch, `${name}.fixed`);
    const env = { REWIND_WORKER_NAME: name, REWIND_WORKER_FILTER: `${eventsSubject(parseStreamPath(root))}.>`, REWIND_WORKER_FIXED_FILE: fixed };
    const replicas = [spawnReplica(env), spawnReplica(env), spawnReplica(env)];
    await waitForConsumer(gw.nats, name, 30_000);
    await waitFor(async () => ((await info(name)).num_waiting >= 3 ? true : undefined), 30_000, "3 replicas pulling");

    // Before the fix: every third job is one the processor cannot handle yet (it answers nothing).
    const paths = ["a", "b", "c"].map((s) => `${root}/${s}`);
    for (let i = 0; i < 12; i++) await append(paths[i % 3] ?? "", { type: "job/requested", payload: { i, tricky: i % 3 === 2 } });
    const beforeFix = await readPaths(paths);
    await waitForSettledProcessor(gw.nats, name, lastOf(beforeFix), 30_000);
    const broken = await readPaths(paths);
    const first = jobs(broken)[0]?.offset ?? 0;
    expect(jobs(broken)).toHaveLength(12);
    expect(answers(broken)).toEqual(new Map(jobs(broken).filter((j) => !isTricky(j)).map((j) => [j.offset, 1])));

    // The fix is deployed (every replica reads the flag per event), then the processor is rewound to the first job.
    writeFileSync(fixed, "");
    const reactedBefore = replicas.map((r) => r.reacting().length);
    const reply = await rewind(name, { to: first });
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    const inFilter = broken.filter((e) => e.offset >= first);
    expect(reply.body).toMatchObject({ processor: name, consumer: ConsumerNames.processor(name), to: first, start: first, attempts: 1, pending: inFilter.length });
    expect(reply.body.before).toMatchObject({ pending: 0, ackPending: 0 });
    expect(reply.body.before.ackFloor).toBeGreaterThanOrEqual(lastOf(broken));
    const rewound = await info(name);
    expect({ policy: rewound.config.deliver_policy, start: rewound.config.opt_start_seq, filter: rewound.config.filter_subject, maxDeliver: rewound.config.max_deliver, ackWait: rewound.config.ack_wait, maxAckPending: rewound.config.max_ack_pending }).toEqual({
      policy: DeliverPolicy.StartSequence,
      start: first,
      filter: env.REWIND_WORKER_FILTER,
      maxDeliver: 10,
      ackWait: 30_000_000_000,
      maxAckPending: 1000,
    });

    // Everything from `first` is delivered again and acknowledged by the new consumer, and the replicas pull from it.
    const settledAt = Date.now();
    const afterRewind = await waitFor(async () => {
      const all = await readPaths(paths);
      return (answers(all).size === 12 ? all : undefined);
    }, 30_000, "the fixed jobs answered");
    await waitForSettledProcessor(gw.nats, name, lastOf(afterRewind), 30_000);
    const redelivered = await info(name);
    expect(redelivered.delivered.stream_seq).toBeGreaterThanOrEqual(lastOf(broken));
    const resumedWithinMs = Date.now() - settledAt;
    // The runtime notices its consumer was re-created within 2 missed heartbeats of 2 s (processors/runtime/runtime.ts).
    expect(resumedWithinMs).toBeLessThan(15_000);

    // No job answered twice; each tricky job answered once, now.
    const final = await readPaths(paths);
    expect(answers(final)).toEqual(new Map(jobs(final).map((j) => [j.offset, 1])));
    // Observed in the replicas: each job answered before the rewind was delivered again and recognised as done, and
    // each tricky one reached `react` again.
    const recognised = new Set(replicas.flatMap((r) => r.recognised()));
    for (const job of jobs(broken).filter((j) => !isTricky(j))) expect(recognised.has(job.offset), `job ${job.offset} recognised`).toBe(true);
    const reactedAfter = new Set(replicas.flatMap((r, i) => r.reacting().slice(reactedBefore[i])));
    for (const job of jobs(broken).filter(isTricky)) expect(reactedAfter.has(job.offset), `job ${job.offset} decided again`).toBe(true);

    // Every replica pulls from the re-created consumer, and new events are answered.
    await waitFor(async () => ((await info(name)).num_waiting >= 3 ? true : undefined), 20_000, "3 replicas pulling after the rewind");
    const reactedBeforeMore = replicas.map((r) => r.reacting().length);
    // New jobs keep coming until every replica has handled some: which replica a pull consumer hands a message to is
    // the server's choice, so a fixed number of jobs could all go to two of them.
    const handledSince = () => replicas.map((r, i) => r.reacting().length - (reactedBeforeMore[i] ?? 0));
    const morePaths: string[] = [];
    for (let i = 0; i < 300 && !handledSince().every((n) => n > 0); i++) {
      morePaths.push(`${root}/more-${i}`);
      await append(`${root}/more-${i}`, { type: "job/requested", payload: { i } });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const more = await waitFor(async () => {
      const all = await readPaths(morePaths);
      return answers(all).size === morePaths.length ? all : undefined;
    }, 30_000, "the new jobs answered");
    expect([...answers(more).values()].every((n) => n === 1)).toBe(true);
    expect(handledSince().every((n) => n > 0), `new jobs handled per replica: ${handledSince().join(", ")}`).toBe(true);
    for (const replica of replicas) expect(replica.child.exitCode).toBeNull();
  }, 120_000);

  it("a replica that starts after the rewind binds to the rewound consumer and keeps its start", async () => {
    const root = uniquePath("rewind");
    const name = uniqueName("restarted");
    const env = { REWIND_WORKER_NAME: name, REWIND_WORKER_FILTER: `${eventsSubject(parseStreamPath(root))}.>`, REWIND_WORKER_FIXED_FILE: join(scratch, "never") };
    const first = spawnReplica(env);
    await waitForConsumer(gw.nats, name, 30_000);
    const [job] = await append(`${root}/a`, { type: "job/requested", payload: {} });
    await settle(name, [`${root}/a`], 1);
    first.child.kill("SIGKILL");
    expect((await rewind(name, { to: job?.offset })).status).toBe(200);
    const rewound = await info(name);
    // Its start() finds the consumer and only updates its limits: no create with its own deliver policy (new).
    const second = spawnReplica(env);
    await waitFor(() => Promise.resolve(second.recognised().includes(job?.offset ?? 0) ? true : undefined), 30_000, "the restarted replica took the rewound event");
    const bound = await info(name);
    expect({ created: bound.created, policy: bound.config.deliver_policy, start: bound.config.opt_start_seq }).toEqual({ created: rewound.created, policy: DeliverPolicy.StartSequence, start: job?.offset });
    const [next] = await append(`${root}/a`, { type: "job/requested", payload: {} });
    await waitFor(async () => (answers(await readAll(gw.url, `${root}/a`)).get(next?.offset ?? 0) === 1 ? true : undefined), 20_000, "a new job answered");
    expect(answers(await readAll(gw.url, `${root}/a`)).get(job?.offset ?? 0)).toBe(1);
  }, 90_000);

  it("wins against a replica that creates the consumer between the delete and the create", async () => {
    const root = uniquePath("rewind");
    const name = uniqueName("raced");
    const consumer = ConsumerNames.processor(name);
    const filter = `${eventsSubject(parseStreamPath(root))}.>`;
    inProcess.push(await runProcessor({ name, triggers: ["job/requested"], filterSubject: filter, initialState: () => null, reduce: () => null, react: () => [{ type: "job/done" }] }));
    const events = await append(`${root}/a`, Array.from({ length: 5 }, () => ({ type: "job/requested" })));
    await settle(name, [`${root}/a`], 5);
    const limits = (await info(name)).config;
    // A replica starting when its consumer is missing creates it at once with its own start (`new`), as the runtime's
    // start() does after a 404: here, the moment JetStream announces the rewind's delete, once per rewind.
    let armed = false;
    let races = 0;
    const advisories = gw.nats.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.DELETED.${gw.nats.streamName}.${consumer}`, {
      callback: () => {
        if (!armed) return;
        armed = false;
        void gw.nats.jsm.consumers
          .add(gw.nats.streamName, { durable_name: consumer, ack_policy: AckPolicy.Explicit, filter_subject: filter, max_deliver: limits.max_deliver, ack_wait: limits.ack_wait, max_ack_pending: limits.max_ack_pending, deliver_policy: DeliverPolicy.New })
          .then(() => (races += 1), () => undefined);
      },
    });
    const attempts: number[] = [];
    try {
      // Back to back, each to the first job: the consumer is never past it, so each is a rewind.
      const to = events[0]?.offset ?? 1;
      for (let i = 0; i < 5; i++) {
        armed = true;
        const reply = await rewind(name, { to });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        attempts.push(reply.body.attempts);
        const now = await info(name);
        expect({ policy: now.config.deliver_policy, start: now.config.opt_start_seq }).toEqual({ policy: DeliverPolicy.StartSequence, start: to });
      }
    } finally {
      advisories.unsubscribe();
    }
    // Each time the replica's create landed inside the window, the rewind saw it and deleted and created again.
    expect(races, `attempts per rewind: ${attempts.join(",")}`).toBeGreaterThan(0);
    expect(attempts.filter((a) => a > 1).length).toBe(races);
    // The running replica goes through the rewound consumer and answers nothing twice.
    expect(answers(await settle(name, [`${root}/a`], 5))).toEqual(new Map(jobs(events).map((j) => [j.offset, 1])));
  }, 120_000);

  it("refuses what is not a rewind, with stable codes, and moves nothing", async () => {
    const root = uniquePath("rewind");
    const name = uniqueName("refused");
    const processor = { name, triggers: ["job/requested"], filterSubject: `${eventsSubject(parseStreamPath(root))}.>`, initialState: () => null, reduce: () => null, react: () => [{ type: "job/done" }] };
    const running = await runProcessor(processor);
    await append(`${root}/a`, [{ type: "job/requested" }, { type: "job/requested" }]);
    await settle(name, [`${root}/a`], 2);
    const before = await info(name);
    const expectRefused = async (processorName: string, body: unknown, status: number, code: string) => {
      const reply = await rewind(processorName, body);
      expect({ status: reply.status, code: reply.body.error?.code }, JSON.stringify(reply.body)).toEqual({ status, code });
      expect(reply.body.error?.message).toEqual(expect.any(String));
    };
    await expectRefused(uniqueName("nobody"), { to: 1 }, 404, "PROCESSOR_NOT_FOUND");
    // A webhook subscription's consumer is no processor's: its deliveries are outside the log (docs/ARCHITECTURE.md).
    await expectRefused("webhook-0123456789abcdef", { to: 1 }, 404, "PROCESSOR_NOT_FOUND");
    await expectRefused("not.a.name", { to: 1 }, 404, "PROCESSOR_NOT_FOUND");
    for (const body of [{}, { to: 0 }, { to: -3 }, { to: 1.5 }, { to: "yesterday" }, { to: "2026-01-01" }, { to: true }, { to: 1, extra: 1 }]) await expectRefused(name, body, 400, "INVALID_REWIND_TARGET");
    await expectRefused(name, { to: new Date(Date.now() + 3_600_000).toISOString() }, 400, "INVALID_REWIND_TARGET");
    const last = (await gw.nats.jsm.streams.info(gw.nats.streamName)).state.last_seq;
    // Far past the log's end: other tests append to the same server meanwhile.
    await expectRefused(name, { to: last + 1_000_000 }, 409, "REWIND_AHEAD");
    // Nothing was deleted or moved by any of them.
    const after = await info(name);
    expect({ created: after.created, policy: after.config.deliver_policy }).toEqual({ created: before.created, policy: before.config.deliver_policy });

    // Stopped with events waiting: starting after them would skip events never handled.
    await running.stop();
    const waiting = await append(`${root}/a`, { type: "job/requested" });
    await expectRefused(name, { to: lastOf(waiting) + 1 }, 409, "REWIND_AHEAD");
    // Up to the first unhandled event is allowed: here, the event itself.
    const ok = await rewind(name, { to: lastOf(waiting) });
    expect(ok.body).toMatchObject({ start: lastOf(waiting), pending: 1 });
    // Waiting in the consumer, or handed to the stopped replica's last pull and never acknowledged.
    expect(ok.body.before.pending + ok.body.before.ackPending).toBe(1);
  }, 60_000);

  it("rewinds to a time: the first event stored at or after it", async () => {
    const root = uniquePath("rewind");
    const name = uniqueName("timed");
    inProcess.push(await runProcessor({ name, triggers: ["job/requested"], filterSubject: `${eventsSubject(parseStreamPath(root))}.>`, initialState: () => null, reduce: () => null, react: () => [{ type: "job/done" }] }));
    const early = await append(`${root}/a`, { type: "job/requested" });
    await settle(name, [`${root}/a`], 1);
    await sleep(20);
    const between = new Date().toISOString();
    await sleep(20);
    const later = await append(`${root}/a`, { type: "job/requested" });
    await settle(name, [`${root}/a`], 2);
    const reply = await rewind(name, { to: between });
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    // The first event of the processor's filter stored at or after the time: past the early job, at most the later
    // one (the early job's answer may be stored right at the time).
    expect(reply.body.to).toBe(between);
    expect(reply.body.start).toBeGreaterThan(lastOf(early));
    expect(reply.body.start).toBeLessThanOrEqual(lastOf(later));
    expect(answers(await settle(name, [`${root}/a`], 2))).toEqual(new Map([...early, ...later].map((j) => [j.offset, 1])));
  }, 60_000);
});

describe("agentmesh processors", () => {
  function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const env: NodeJS.ProcessEnv = { ...process.env, AGENTMESH_URL: gw.url, NO_COLOR: "" };
    delete env.AGENTMESH_TOKEN;
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    return new Promise((resolve) => child.on("close", (code) => { resolve({ code, stdout, stderr }); }));
  }

  it("lists the processors and rewinds one by offset or time; errors carry the gateway's code", async () => {
    const root = uniquePath("rewind-cli");
    const name = uniqueName("cli");
    inProcess.push(await runProcessor({ name, triggers: ["job/requested"], filterSubject: `${eventsSubject(parseStreamPath(root))}.>`, initialState: () => null, reduce: () => null, react: () => [{ type: "job/done" }] }));
    const events = await append(`${root}/a`, [{ type: "job/requested" }, { type: "job/requested" }]);
    await settle(name, [`${root}/a`], 2);

    const listed = await cli(["processors", "ls"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^${name}\\s+processor\\s+0\\s+0\\s+\\d+\\s+yes$`, "m"));
    const bare = await cli(["processors"]);
    expect(bare.stdout).toContain(name);

    const plain = await cli(["processors", "rewind", name, "--to", String(events[0]?.offset)]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toContain(`${name} rewound: it starts again at offset ${events[0]?.offset}`);
    await settle(name, [`${root}/a`], 2);

    const at = new Date(Date.now() - 60_000).toISOString();
    const json = await cli(["processors", "rewind", name, "--to", at, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const body = JSON.parse(json.stdout) as ProcessorRewoundBody;
    expect(body).toMatchObject({ processor: name, to: at });
    expect(body.start).toBeLessThanOrEqual(events[0]?.offset ?? 0);
    expect(answers(await settle(name, [`${root}/a`], 2))).toEqual(new Map(events.map((e) => [e.offset, 1])));

    const unknown = await cli(["processors", "rewind", uniqueName("nobody"), "--to", "1"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^agentmesh: PROCESSOR_NOT_FOUND: /);
    const bad = await cli(["processors", "rewind", name, "--to", "soon"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^agentmesh: INVALID_REWIND_TARGET: /);
    const missing = await cli(["processors", "rewind", name]);
    expect(missing.code).toBe(2);
  }, 60_000);
});
