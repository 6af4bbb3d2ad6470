import { spawn } from "node:child_process";
import { join } from "node:path";
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { RetryableError, TerminalError } from "../../processors/runtime/errors.js";
import type { Processor } from "../../processors/runtime/runtime.js";
import { eventsSubject, parseStreamPath, type StreamPath } from "../../shared/contract/subjects.js";
import { ConsumerNames } from "../../shared/contract/wire.js";
import { lastMessage } from "../../shared/log/read.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll, runProcessor, uniqueName, waitFor, waitForConsumer, waitForSettledProcessor } from "../support/processors.js";

let gw: TestGateway;
const running: RunningProcessor[] = [];
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await gw.close();
});

async function start<S>(processor: Processor<S>, env: Record<string, string> = {}): Promise<RunningProcessor> {
  const p = await runProcessor(processor, env);
  running.push(p);
  return p;
}
const append = (path: string, body: unknown) => request<EventEnvelope | EventEnvelope[]>(`${gw.url}/streams${path}`, { body });
const subtree = (root: string) => `${eventsSubject(parseStreamPath(root))}.>`;
const lastOffset = (events: EventEnvelope[]) => events.at(-1)?.offset ?? 0;

/**
 * The processor's consumer has every event of the log acknowledged (num_pending and num_ack_pending 0, which
 * includes messages waiting for redelivery), and the log has not moved since: nothing more will be appended.
 */
async function expectSettled(name: string, path: string): Promise<EventEnvelope[]> {
  const events = await readAll(gw.url, path);
  await waitForSettledProcessor(gw.nats, name, lastOffset(events));
  const info = await gw.nats.jsm.consumers.info(gw.nats.streamName, ConsumerNames.processor(name));
  expect({ pending: info.num_pending, ackPending: info.num_ack_pending }).toEqual({ pending: 0, ackPending: 0 });
  const after = await readAll(gw.url, path);
  expect(after).toEqual(events);
  return after;
}

describe("processor runtime", () => {
  it("reacts to its trigger types only, marking each reaction with its source and a deterministic key", async () => {
    const root = uniquePath("rt");
    const name = uniqueName("greeter");
    await start({ name, triggers: ["user/*"], filterSubject: subtree(root), initialState: () => null, reduce: () => null, react: ({ event }) => [{ type: "bot/greeted", payload: { to: event.type } }] });
    const path = `${root}/a`;
    await append(path, [{ type: "user/joined" }, { type: "system/noise" }, { type: "user/left" }]);
    const events = await waitFor(async () => {
      const all = await readAll(gw.url, path);
      return all.filter((e) => e.type === "bot/greeted").length === 2 ? all : undefined;
    });
    const inputs = events.filter((e) => e.type.startsWith("user/"));
    const reactions = events.filter((e) => e.type === "bot/greeted");
    expect(reactions.map((r) => r.source)).toEqual(inputs.map((i) => ({ processor: name, causationOffset: i.offset })));
    expect(reactions.map((r) => r.idempotencyKey)).toEqual(inputs.map((i) => `${name}:${i.offset}:0`));
    // Every event acknowledged, the untriggered ones and its own reactions included.
    expect(await expectSettled(name, path)).toEqual(events);
  });

  /** A processor that gives up on `job/poison` (terminal error) and reacts to the rest; the events once both are done. */
  async function poisonThenFine(): Promise<{ name: string; events: EventEnvelope[] }> {
    const root = uniquePath("rt");
    const name = uniqueName("picky");
    await start({
      name,
      triggers: ["job/*"],
      filterSubject: subtree(root),
      initialState: () => null,
      reduce: () => null,
      react: ({ event }) => {
        if (event.type === "job/poison") throw new TerminalError("cannot digest this");
        return [{ type: "done" }];
      },
    });
    const path = `${root}/a`;
    await append(path, [{ type: "job/poison" }, { type: "job/fine" }]);
    const events = await waitFor(async () => {
      const all = await readAll(gw.url, path);
      return all.some((e) => e.type === "done") && all.some((e) => e.type === "stream/error-occurred") ? all : undefined;
    });
    return { name, events };
  }

  it("records a terminal error as stream/error-occurred and goes on with the next event (a poison event never blocks)", async () => {
    const { name, events } = await poisonThenFine();
    const poison = events.find((e) => e.type === "job/poison");
    expect(events.find((e) => e.type === "stream/error-occurred")?.payload).toEqual({ processor: name, message: "cannot digest this", offset: poison?.offset });
  });

  // nats-server before 2.10 (2.9.10 here, as Debian ships it) does not recognise `+TERM <reason>` as a termination:
  // with a reason, the event stays unacknowledged (num_ack_pending 1) until the ack wait (30 s) brings it back.
  it("acknowledges an event it gives up on, so that JetStream does not deliver it again", async () => {
    const { name, events } = await poisonThenFine();
    // Well within the 30 s ack wait: a terminated event is acknowledged at once.
    await waitForSettledProcessor(gw.nats, name, lastOffset(events), 5_000);
  });

  it("retries failures with backoff and gives up at the delivery limit", async () => {
    const root = uniquePath("rt");
    const name = uniqueName("flaky");
    const attempts = new Map<number, number>();
    await start(
      {
        name,
        triggers: ["job/*"],
        filterSubject: subtree(root),
        initialState: () => null,
        reduce: () => null,
        react: ({ event }) => {
          const n = (attempts.get(event.offset) ?? 0) + 1;
          attempts.set(event.offset, n);
          if (event.type === "job/hopeless") throw new Error(`still broken (${n})`);
          if (n < 3) throw new RetryableError("not yet", 50);
          return [{ type: "done", payload: { attempts: n } }];
        },
      },
      { PROCESSOR_MAX_DELIVER: "3" },
    );
    const path = `${root}/a`;
    await append(path, [{ type: "job/eventually" }, { type: "job/hopeless" }]);
    const events = await waitFor(
      async () => {
        const all = await readAll(gw.url, path);
        return all.some((e) => e.type === "done") && all.some((e) => e.type === "stream/error-occurred") ? all : undefined;
      },
      15_000,
    );
    expect(events.find((e) => e.type === "done")?.payload).toEqual({ attempts: 3 });
    expect(events.find((e) => e.type === "stream/error-occurred")?.payload).toMatchObject({ message: "still broken (3)" });
    expect([...attempts.values()]).toEqual([3, 3]);
  });

  it("with 3 replicas, decides once per event and in order, whatever replica gets it", async () => {
    const root = uniquePath("rt");
    const name = uniqueName("numberer");
    // Each input gets the next number: a decision that depends on every earlier decision.
    const numberer: Processor<number> = {
      name,
      triggers: ["input"],
      filterSubject: subtree(root),
      initialState: () => 0,
      reduce: (count, event) => (event.type === "numbered" ? count + 1 : count),
      react: ({ stream }) => [{ type: "numbered", payload: { n: stream.state + 1 } }],
    };
    await Promise.all([start(numberer), start(numberer), start(numberer)]);
    const path = `${root}/a`;
    for (let i = 0; i < 6; i++) await append(path, Array.from({ length: 5 }, () => ({ type: "input" })));
    const events = await waitFor(async () => {
      const all = await readAll(gw.url, path);
      return all.filter((e) => e.type === "numbered").length >= 30 ? all : undefined;
    }, 20_000);
    const numbered = (await expectSettled(name, path)).filter((e) => e.type === "numbered");
    expect(numbered.map((e) => (e.payload as { n: number }).n)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const causes = numbered.map((e) => e.source?.causationOffset);
    expect(new Set(causes).size).toBe(30);
    expect(new Set(causes)).toEqual(new Set(events.filter((e) => e.type === "input").map((e) => e.offset)));
  });

  it("stores every reaction of a batch on a stream other writers keep moving (a writer in between does not cut it short)", async () => {
    // Ten reactions to each job: nine gaps in which a noise event may land between two of them.
    const PARTS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    const root = uniquePath("rt-batch");
    const name = uniqueName("batcher");
    const path = `${root}/busy`;
    await start({ name, triggers: ["job"], filterSubject: subtree(root), initialState: () => null, reduce: () => null, react: () => PARTS.map((part) => ({ type: "job/part", payload: { part } })) });
    const writing = { on: true };
    const noise = (async () => {
      while (writing.on) {
        await append(path, { type: "noise" });
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    })();
    for (let i = 0; i < 40; i++) await append(path, { type: "job" });
    const jobs = (await readAll(gw.url, path)).filter((e) => e.type === "job");
    const events = await waitFor(async () => {
      const all = await readAll(gw.url, path);
      return all.filter((e) => e.type === "job/part").length >= jobs.length * PARTS.length ? all : undefined;
    }, 20_000).catch(() => readAll(gw.url, path));
    writing.on = false;
    await noise;
    const parts = (job: EventEnvelope) => events.filter((e) => e.type === "job/part" && e.source?.causationOffset === job.offset).map((e) => (e.payload as { part: number }).part);
    expect(jobs.map(parts).filter((found) => found.join() !== PARTS.join())).toEqual([]);
  }, 40_000);

  it("does not decide while the stream ends in the middle of another decision's batch", async () => {
    const root = uniquePath("rt-unfinished");
    const name = uniqueName("patient");
    const path = `${root}/a`;
    // Decides slowly, so that another writer's batch starts while it decides.
    await start({ name, triggers: ["ask"], filterSubject: subtree(root), initialState: () => null, reduce: () => null, react: async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return [{ type: "answer" }];
    } });
    await append(path, { type: "ask" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Another processor's decision of two events, its second part late.
    const batch = (part: number) => ({ type: "other/part", metadata: { batch: { index: part, of: 2 } }, source: { processor: "other", causationOffset: 1 } });
    await append(path, batch(0));
    await new Promise((resolve) => setTimeout(resolve, 600));
    const last = (await append(path, batch(1))).body as EventEnvelope;
    const events = await waitFor(async () => {
      const all = await readAll(gw.url, path);
      return all.some((e) => e.type === "answer") ? all : undefined;
    }, 10_000);
    // Decided on the whole batch: its answer comes after the batch's last part.
    expect((events.find((e) => e.type === "answer") as EventEnvelope).offset).toBeGreaterThan(last.offset);
  }, 20_000);

  it("does not react again to an event whose reaction was stored before a crash (redelivery past the dedupe window)", async () => {
    const root = uniquePath("rt");
    const name = uniqueName("once");
    const processor: Processor<null> = { name, triggers: ["job"], filterSubject: subtree(root), initialState: () => null, reduce: () => null, react: () => [{ type: "done" }] };
    // Create the durable consumer, then stop: the next events wait in it as they would for a crashed replica.
    const first = await runProcessor(processor);
    await first.stop();
    const path = `${root}/a`;
    const job = (await append(path, { type: "job" })).body as EventEnvelope;
    // What a replica that crashed between storing its reaction and acking would have left behind, with a key the window no longer knows.
    await append(path, { type: "done", source: { processor: name, causationOffset: job.offset }, idempotencyKey: "from-before-the-window" });
    const second = await append(path, { type: "job" });
    await start(processor);
    await waitFor(async () => ((await readAll(gw.url, path)).filter((e) => e.type === "done").length === 2 ? true : undefined));
    const done = (await expectSettled(name, path)).filter((e) => e.type === "done");
    expect(done.map((e) => e.source?.causationOffset)).toEqual([job.offset, (second.body as EventEnvelope).offset]);
  });

  it("without a subject filter, sees every agent stream's events and none of the Durable Streams face's data", async () => {
    const name = uniqueName("everything");
    const seen: { path: string; type: string }[] = [];
    const marker = uniquePath("rt");
    const everything = await runProcessor({
      name,
      triggers: ["**"],
      initialState: () => null,
      reduce: () => null,
      react: ({ event }) => {
        seen.push({ path: event.streamPath, type: event.type });
        return [];
      },
    });
    try {
      // The same JetStream stream holds the Durable Streams face's data (subjects durable.>): not events.
      const dsUrl = `${gw.url}/v1/stream${uniquePath("ds")}`;
      expect((await fetch(dsUrl, { method: "PUT", headers: { "content-type": "text/plain" } })).status).toBe(201);
      for (let i = 0; i < 3; i++) expect((await fetch(dsUrl, { method: "POST", headers: { "content-type": "text/plain" }, body: `not an event ${i}` })).status).toBe(204);
      const probe = (await append(marker, { type: "probe/after" })).body as EventEnvelope;
      await waitFor(() => Promise.resolve(seen.some((e) => e.path === marker) ? true : undefined));
      expect(seen.filter((e) => e.type === "stream/invalid-event")).toEqual([]);
      expect(seen.filter((e) => e.path === marker)).toEqual([{ path: marker, type: "probe/after" }]);
      await waitForSettledProcessor(gw.nats, name, probe.offset);
    } finally {
      await everything.stop();
    }
  });

  /** A stateless processor of `job` events under `root` that may decide on cached states; `react` is the test's. */
  const cachedStateJobs = (name: string, root: string): Omit<Processor<null>, "react"> => ({
    name,
    triggers: ["job"],
    filterSubject: subtree(root),
    serialiseDecisions: false,
    decideOnCachedState: true,
    initialState: () => null,
    reduce: () => null,
  });

  it("decides on a cached state only while no pause or resume came after it", async () => {
    const root = uniquePath("rt");
    const path = `${root}/a` as StreamPath;
    const name = uniqueName("cached");
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const decisions: { offset: number; stateOffset: number }[] = [];
    const p = await start({
      ...cachedStateJobs(name, root),
      react: async ({ event, stream }) => {
        decisions.push({ offset: event.offset, stateOffset: stream.offset });
        if (decisions.length === 1) await gate;
        return [];
      },
    });
    const jobs = (await append(path, [{ type: "job" }, { type: "job" }, { type: "job" }])).body as EventEnvelope[];
    // The first job's decision read the stream to its end: the jobs stored by then are in its state (a batch is
    // stored one event after another, so on a busy machine the first may be delivered before the others are stored).
    await waitFor(() => Promise.resolve(decisions.length === 1 ? true : undefined));
    expect(decisions[0]?.offset).toBe(jobs[0]?.offset);
    expect(decisions[0]?.stateOffset).toBeGreaterThanOrEqual(jobs[0]?.offset ?? Infinity);
    await append(path, { type: "stream/paused", payload: { reason: "a person looks" } });
    const resumed = (await request<EventEnvelope>(`${gw.url}/streams${path}/resume`, { body: {} })).body;
    await waitFor(() => Promise.resolve((p.indexes.pauseStatus(path)?.offset ?? 0) >= resumed.offset ? true : undefined));
    release();
    await waitFor(() => Promise.resolve(decisions.length === 3 ? true : undefined));
    // The cached state (as of the third job) predates the pause and resume the index knows of: read again.
    expect(decisions.slice(1)).toEqual([
      { offset: jobs[1]?.offset, stateOffset: resumed.offset },
      { offset: jobs[2]?.offset, stateOffset: resumed.offset },
    ]);
  });

  it("reads the log again on a redelivery even when it may decide on cached states", async () => {
    const root = uniquePath("rt");
    const path = `${root}/a`;
    const name = uniqueName("redelivered");
    let calls = 0;
    await start({
      ...cachedStateJobs(name, root),
      react: async ({ event }) => {
        calls += 1;
        if (calls > 1) return [{ type: "done" }];
        // What a replica leaves that stored its reaction and died before acking, under a key the window no longer knows.
        await append(path, { type: "done", source: { processor: name, causationOffset: event.offset }, idempotencyKey: "from-before-the-window" });
        throw new RetryableError("crashed after storing", 50);
      },
    });
    const job = (await append(path, { type: "job" })).body as EventEnvelope;
    await waitForSettledProcessor(gw.nats, name, job.offset);
    const done = (await expectSettled(name, path)).filter((e) => e.type === "done");
    expect(done.map((e) => e.idempotencyKey)).toEqual(["from-before-the-window"]);
  });

  it("handles an event on a subject no stream path maps back to (a foreign writer's) once, appending nothing", async () => {
    const name = uniqueName("foreign");
    const token = uniqueName("foreign");
    const foreign = await runProcessor({ name, triggers: ["**"], initialState: () => null, reduce: () => null, react: () => [] }, { PROCESSOR_MAX_DELIVER: "3" });
    try {
      // `+` is not a path character: this event's path is shown percent-encoded, and that path's subject is another.
      const stored = await gw.nats.publisher.publish(`events.${token}.x+y`, Buffer.from(JSON.stringify({ type: "foreign/thing", payload: {}, createdAt: new Date().toISOString() })));
      await waitForSettledProcessor(gw.nats, name, stored.seq);
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Nothing was appended under it: no stream/error-occurred, nor a chain of them on ever longer encodings.
      expect((await lastMessage(gw.nats, `events.${token}.>`))?.seq).toBe(stored.seq);
    } finally {
      await foreign.stop();
    }
  });

  it("takes the old filter events.> off an existing consumer, keeping its place in the log", async () => {
    const name = uniqueName("migrated");
    const durable = ConsumerNames.processor(name);
    await gw.nats.jsm.consumers.add(gw.nats.streamName, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New, filter_subject: "events.>" });
    const path = uniquePath("rt");
    // Stored while no replica ran: the consumer must still hand it over after the change.
    const waiting = (await append(path, { type: "migrate/job" })).body as EventEnvelope;
    const migrated = await runProcessor({ name, triggers: ["migrate/job"], initialState: () => null, reduce: () => null, react: () => [{ type: "migrate/done" }] });
    try {
      const info = await gw.nats.jsm.consumers.info(gw.nats.streamName, durable);
      expect(info.config.filter_subject ?? "").toBe("");
      const done = await waitFor(async () => (await readAll(gw.url, path)).find((e) => e.type === "migrate/done"));
      expect(done.source).toEqual({ processor: name, causationOffset: waiting.offset });
    } finally {
      await migrated.stop();
    }
  });

  it("survives kill -9 mid-event: after a restart the event gets exactly one reaction", async () => {
    const root = uniquePath("rt");
    const name = uniqueName("slow");
    const env = { ...process.env, NATS_URL: inject("natsUrl"), LOG_LEVEL: "warn", SLOW_WORKER_NAME: name, SLOW_WORKER_DELAY_MS: "1500", SLOW_WORKER_FILTER: subtree(root), PROCESSOR_ACK_WAIT_MS: "2000" };
    const spawnWorker = () => {
      const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "../support/processes/slow-worker.ts")], { env, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
      return { child, output: () => out, exited: new Promise((resolve) => child.once("exit", resolve)) };
    };
    const victim = spawnWorker();
    try {
      // Let the consumer exist before the job is appended.
      await waitForConsumer(gw.nats, name);
      const path = `${root}/a`;
      const job = (await append(path, { type: "job/requested" })).body as EventEnvelope;
      await waitFor(() => Promise.resolve(victim.output().includes(`REACTING ${job.offset}`) ? true : undefined), 10_000, "reaction started");
      victim.child.kill("SIGKILL");
      await victim.exited;
      expect((await readAll(gw.url, path)).filter((e) => e.type === "job/done")).toHaveLength(0);

      const survivor = spawnWorker();
      try {
        const done = await waitFor(async () => {
          const all = (await readAll(gw.url, path)).filter((e) => e.type === "job/done");
          return all.length > 0 ? all : undefined;
        }, 20_000, "job/done after restart");
        // The killed replica's delivery was redelivered (after the 2 s ack wait) and acknowledged: nothing is outstanding.
        expect((await expectSettled(name, path)).filter((e) => e.type === "job/done")).toHaveLength(1);
        expect(done[0]?.source).toEqual({ processor: name, causationOffset: job.offset });
      } finally {
        survivor.child.kill("SIGTERM");
        await survivor.exited;
      }
    } finally {
      victim.child.kill("SIGKILL");
    }
  }, 60_000);
});
