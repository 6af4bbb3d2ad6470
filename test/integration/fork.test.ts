import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { breakerProcessor } from "../../processors/breaker/processor.js";
import { buildLlm } from "../../processors/llm/service.js";
import { buildScheduler } from "../../processors/scheduler/service.js";
import { buildWebhookPusher } from "../../processors/webhook-pusher/service.js";
import { request, startGateway, TEST_SECRETS_KEYS, uniquePath, type TestGateway } from "../support/gateway.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { readAll, runBuiltProcessor, runProcessor, uniqueName, waitFor } from "../support/processors.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

/**
 * Forks (docs/ARCHITECTURE.md, "Forks"): POST /streams/<path>/fork copies a stream's history up to an event, and the
 * llm processor, the scheduler and the webhook pusher go on in the fork as if that history had happened there,
 * without doing any of it again.
 */
let gw: TestGateway;
let model: ModelServer;
let hook: WebhookReceiver;
const running: RunningProcessor[] = [];
const root = uniquePath("forks");
const filterSubject = `${eventsSubject(parseStreamPath(root))}.>`;

beforeAll(async () => {
  gw = await startGateway();
  model = await startModelServer();
  hook = await startWebhookReceiver();
  const llmEnv = { LLM_BASE_URL: model.baseURL, LLM_MODEL: "test-model", LLM_MAX_RETRIES: "0", PROCESSOR_SUBJECT_FILTER: filterSubject };
  const pusherEnv = { SECRETS_KEYS: TEST_SECRETS_KEYS, WEBHOOK_ALLOWED_NETWORKS: "loopback", WEBHOOK_RETRY_SCHEDULE_MS: "0,200,400", WEBHOOK_TIMEOUT_MS: "2000" };
  running.push(await runBuiltProcessor("llm", (deps) => Promise.resolve(buildLlm(deps, { ...process.env, ...llmEnv })), { ...llmEnv, PROCESSOR_NAME: uniqueName("llm") }));
  running.push(await runBuiltProcessor("scheduler", (deps) => buildScheduler(deps, { name: uniqueName("scheduler"), filterSubject })));
  running.push(await runProcessor({ ...breakerProcessor({ maxEventsPerSecond: 100, burst: 100 }), name: uniqueName("breaker"), filterSubject }));
  running.push(await runBuiltProcessor("webhook-pusher", (deps) => buildWebhookPusher(deps, { ...process.env, ...pusherEnv }, { filterSubject }), { ...pusherEnv, PROCESSOR_NAME: uniqueName("webhook-pusher") }));
}, 60_000);
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await hook.close();
  await model.close();
  await gw.close();
});
beforeEach(() => {
  model.script = [];
  model.fallback = () => ({ chunks: ["ok"] });
});

interface ForkReply {
  forked: EventEnvelope;
  events: number;
}
const append = (path: string, body: unknown) => request<EventEnvelope | EventEnvelope[]>(`${gw.url}/streams${path}`, { body });
const say = (path: string, content: string) => append(path, { type: "agent/input-added", payload: { role: "user", content } });
const fork = (path: string, body: unknown) => request<ForkReply>(`${gw.url}/streams${path}/fork`, { body });
const own = (events: EventEnvelope[]) => events.filter((e) => e.forkedFrom === undefined);
const settled = (events: EventEnvelope[]) => events.filter((e) => e.type === "agent/llm-request-settled");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(path: string, predicate: (events: EventEnvelope[]) => boolean, timeoutMs = 15_000): Promise<EventEnvelope[]> {
  return waitFor(async () => {
    const events = await readAll(gw.url, path);
    return predicate(events) ? events : undefined;
  }, timeoutMs, `condition on ${path}`);
}

describe("POST /streams/<path>/fork", () => {
  it("copies the history up to and including the event, marked, with the offsets it names translated; runs none of it again", async () => {
    const source = `${root}/chat`;
    await say(source, "first question");
    await until(source, (events) => settled(events).length === 1);
    await say(source, "second question");
    const full = await until(source, (events) => settled(events).length === 2);
    const at = (settled(full)[0] as EventEnvelope).offset;
    const requestsBefore = model.requests.length;

    const to = `${root}/chat-fork`;
    const reply = await fork(source, { at, to });
    expect(reply.status, JSON.stringify(reply.body)).toBe(201);
    const inherited = full.filter((e) => e.offset <= at);
    expect(reply.body.events).toBe(inherited.length);
    expect(reply.body.forked).toMatchObject({ streamPath: to, type: "stream/forked", payload: { from: source, at, events: inherited.length, subscriptions: false } });

    const copy = await readAll(gw.url, to);
    expect(copy.length).toBe(inherited.length + 1);
    const offsetIn = new Map(inherited.map((e, i) => [e.offset, (copy[i] as EventEnvelope).offset]));
    for (const [i, original] of inherited.entries()) {
      const copied = copy[i] as EventEnvelope;
      expect(copied.forkedFrom).toEqual({ path: source, offset: original.offset });
      expect(copied.type).toBe(original.type);
      expect(copied.createdAt).toBe(original.createdAt);
      expect(copied.metadata).toEqual(original.metadata);
      expect(copied.idempotencyKey).toBe(original.idempotencyKey);
      if (original.source !== undefined) expect(copied.source).toEqual({ processor: original.source.processor, causationOffset: offsetIn.get(original.source.causationOffset) });
      const payload = original.payload as Record<string, unknown>;
      const expected = "requestOffset" in payload ? { ...payload, requestOffset: offsetIn.get(payload.requestOffset as number) } : payload;
      expect(copied.payload).toEqual(expected);
    }
    expect(copy.at(-1)?.forkedFrom).toBeUndefined();

    // Settled in the inherited history: no request runs again, and nothing else is appended.
    await sleep(1_500);
    expect(model.requests.length).toBe(requestsBefore);
    expect((await readAll(gw.url, to)).length).toBe(copy.length);
    // The source is as it was.
    expect(await readAll(gw.url, source)).toEqual(full);

    // The fork's state is the source's at `at`.
    const state = await request<{ processors: { llm: { state: { messages: unknown[]; running: unknown } } } }>(`${gw.url}/streams${to}/state?processor=llm`);
    const sourceState = await request<{ processors: { llm: { state: { messages: unknown[] } } } }>(`${gw.url}/streams${source}/state?processor=llm&at=${at}`);
    expect(state.body.processors.llm.state.messages).toEqual(sourceState.body.processors.llm.state.messages);
  }, 40_000);

  it("re-runs from here: another model and a new input in the fork send the inherited history, not what came after", async () => {
    const source = `${root}/rerun`;
    await say(source, "what is a mesh?");
    await until(source, (events) => settled(events).length === 1);
    await say(source, "and an agent?");
    const full = await until(source, (events) => settled(events).length === 2);
    const at = (settled(full)[0] as EventEnvelope).offset;
    const to = `${root}/rerun-fork`;
    expect((await fork(source, { at, to })).status).toBe(201);

    model.fallback = () => ({ chunks: ["from the other model"] });
    expect((await append(to, { type: "agent/configured", payload: { model: "other-model" } })).status).toBe(201);
    const before = model.requests.length;
    await say(to, "what is an event?");
    const events = await until(to, (e) => settled(own(e)).length === 1);
    const sent = model.requests[before];
    expect(sent?.model).toBe("other-model");
    const contents = (sent?.messages ?? []).map((m) => m.content);
    expect(contents).toContain("what is a mesh?");
    expect(contents).toContain("what is an event?");
    expect(contents).not.toContain("and an agent?");
    expect((settled(own(events))[0]?.payload as { result: { text: string } }).result.text).toBe("from the other model");
    // The source went on as it was.
    expect((await readAll(gw.url, source)).length).toBe(full.length);
  }, 40_000);

  it("runs again a model request that was in flight at the fork point, with the same conversation", async () => {
    const source = `${root}/inflight`;
    await say(source, "tell me");
    const full = await until(source, (events) => settled(events).length === 1);
    const started = full.find((e) => e.type === "agent/llm-request-started") as EventEnvelope;
    const to = `${root}/inflight-fork`;
    const before = model.requests.length;
    expect((await fork(source, { at: started.offset, to })).status).toBe(201);

    const events = await until(to, (e) => settled(own(e)).length === 2);
    const [cancelled, answered] = settled(own(events)).map((e) => e.payload as { requestOffset: number; result: { status: string } });
    const inheritedStart = events.find((e) => e.type === "agent/llm-request-started" && e.forkedFrom !== undefined) as EventEnvelope;
    expect(cancelled).toMatchObject({ requestOffset: inheritedStart.offset, result: { status: "cancelled" } });
    const rerun = own(events).find((e) => e.type === "agent/llm-request-started") as EventEnvelope;
    expect(answered).toMatchObject({ requestOffset: rerun.offset, result: { status: "succeeded" } });
    expect(model.requests.length).toBe(before + 1);
    expect(model.requests[before]?.messages.map((m) => m.content)).toContain("tell me");
  }, 30_000);

  it("leaves a tool call open in the fork: its timeout counts from the fork, and a result appended there is used", async () => {
    const source = `${root}/tools`;
    await append(source, { type: "agent/configured", payload: { toolTimeoutSeconds: 3, tools: [{ name: "lookup" }] } });
    model.script = [{ toolCalls: [{ id: "call-1", name: "lookup", arguments: "{}" }] }];
    await say(source, "look it up");
    // Nobody owns the tool: the call times out in the source after 3 s, and the loop goes on.
    const full = await until(source, (events) => events.some((e) => e.type === "agent/tool-call-timed-out") && settled(events).length === 2, 20_000);
    const timeoutAdded = full.find((e) => e.type === "schedule/added") as EventEnvelope;

    // Fork A: the call is open; its timeout fires 3 s after the fork, not at once (the source's passed long ago).
    const a = `${root}/tools-a`;
    const forkedA = await fork(source, { at: timeoutAdded.offset, to: a });
    expect(forkedA.status).toBe(201);
    const pending = await request<{ processors: { llm: { state: { pendingToolCalls: Record<string, unknown> } } } }>(`${gw.url}/streams${a}/state?processor=llm`);
    expect(Object.keys(pending.body.processors.llm.state.pendingToolCalls)).toEqual(["call-1"]);
    const timedOut = (await until(a, (e) => own(e).some((x) => x.type === "agent/tool-call-timed-out"), 15_000)).find((e) => e.type === "agent/tool-call-timed-out" && e.forkedFrom === undefined) as EventEnvelope;
    const waitedMs = Date.parse(timedOut.createdAt) - Date.parse(forkedA.body.forked.createdAt);
    expect(waitedMs).toBeGreaterThanOrEqual(2_500);
    expect(waitedMs).toBeLessThan(8_000);

    // Fork B: a person answers the call in the fork; the next request carries that answer.
    const b = `${root}/tools-b`;
    expect((await fork(source, { at: timeoutAdded.offset, to: b })).status).toBe(201);
    const before = model.requests.length;
    expect((await append(b, { type: "agent/tool-call-settled", payload: { callId: "call-1", result: { found: "by hand" } } })).status).toBe(201);
    await until(b, (e) => settled(own(e)).length === 1);
    const toolMessage = model.requests[before]?.messages.find((m) => m.role === "tool");
    expect(toolMessage?.content).toBe(JSON.stringify({ found: "by hand" }));
  }, 60_000);

  it("fires inherited schedules from now on, without replaying past firings", async () => {
    const source = `${root}/schedules`;
    await append(source, { type: "schedule/added", payload: { slug: "tick", append: { type: "tick/fired" }, schedule: { kind: "every", seconds: 1 } } });
    const tickAdded = (await readAll(gw.url, source))[0] as EventEnvelope;
    await append(source, { type: "schedule/added", payload: { slug: "once", append: { type: "once/fired" }, schedule: { kind: "in", seconds: 0.2 } } });
    const full = await until(source, (events) => events.filter((e) => e.type === "tick/fired").length >= 2 && events.some((e) => e.type === "once/fired"), 10_000);
    await append(source, { type: "schedule/cancelled", payload: { slug: "tick" } });
    const at = (full.at(-1) as EventEnvelope).offset;
    const to = `${root}/schedules-fork`;
    const reply = await fork(source, { at, to });
    expect(reply.status).toBe(201);
    const forkedAt = Date.parse(reply.body.forked.createdAt);
    const events = await until(to, (e) => own(e).filter((x) => x.type === "tick/fired").length >= 2, 10_000);
    const ticks = own(events).filter((e) => e.type === "tick/fired");
    // Each firing in the fork is due on the schedule's grid (every second from when it was added), after the fork:
    // not a catch-up of the runs the fork's history did not have.
    const dueAt = (e: EventEnvelope) => Date.parse((e.metadata as { scheduledFor: string }).scheduledFor);
    for (const tick of ticks) {
      expect((dueAt(tick) - Date.parse(tickAdded.createdAt)) % 1000).toBe(0);
      expect(dueAt(tick)).toBeGreaterThan(forkedAt - 1000);
    }
    expect(dueAt(ticks[1] as EventEnvelope) - dueAt(ticks[0] as EventEnvelope)).toBe(1000);
    // The one-shot fired in the inherited history: never again.
    expect(own(events).some((e) => e.type === "once/fired")).toBe(false);
    await append(to, { type: "schedule/cancelled", payload: { slug: "tick" } });
  }, 30_000);

  it("keeps an `at` schedule's time in the fork", async () => {
    const source = `${root}/at-schedule`;
    const due = new Date(Date.now() + 1_500).toISOString();
    const added = (await append(source, { type: "schedule/added", payload: { slug: "later", append: { type: "later/fired" }, schedule: { kind: "at", at: due } } })).body as EventEnvelope;
    const to = `${root}/at-schedule-fork`;
    expect((await fork(source, { at: added.offset, to })).status).toBe(201);
    const events = await until(to, (e) => own(e).some((x) => x.type === "later/fired"), 10_000);
    const fired = own(events).filter((e) => e.type === "later/fired");
    expect(fired).toHaveLength(1);
    expect((fired[0]?.metadata as { scheduledFor: string }).scheduledFor).toBe(due);
    expect(fired[0]?.source?.causationOffset).toBe(events.find((e) => e.type === "schedule/added")?.offset);
  });

  it("inherits webhook subscriptions only when asked, delivering the fork's own events", async () => {
    const source = `${root}/hooks`;
    await append(source, { type: "subscription/configured", payload: { slug: "out", url: hook.url, types: ["note/*"], secret: `whsec_${Buffer.alloc(24, 3).toString("base64")}` } });
    await append(source, { type: "note/added", payload: { n: 0 } });
    await waitFor(() => Promise.resolve(hook.received.length === 1 ? true : undefined), 10_000, "the source's delivery");
    const at = (await readAll(gw.url, source)).at(-1)?.offset as number;

    const without = `${root}/hooks-without`;
    expect((await fork(source, { at, to: without })).status).toBe(201);
    await append(without, { type: "note/added", payload: { n: 1 } });
    const withThem = `${root}/hooks-with`;
    expect((await fork(source, { at, to: withThem, subscriptions: true })).status).toBe(201);
    await append(withThem, { type: "note/added", payload: { n: 2 } });
    await waitFor(() => Promise.resolve(hook.received.length >= 2 ? true : undefined), 10_000, "the fork's delivery");
    await sleep(1_500);
    const delivered = hook.received.map((w) => JSON.parse(w.body) as EventEnvelope);
    expect(delivered.map((e) => [e.streamPath, (e.payload as { n: number }).n])).toEqual([
      [source, 0],
      [withThem, 2],
    ]);
  }, 30_000);

  it("fires a tool call's timeout that came due while the fork was paused once it is resumed", async () => {
    const source = `${root}/paused-tool`;
    await append(source, { type: "agent/configured", payload: { toolTimeoutSeconds: 1, tools: [{ name: "lookup" }] } });
    model.script = [{ toolCalls: [{ id: "call-p", name: "lookup", arguments: "{}" }] }];
    await say(source, "look it up, then wait");
    await until(source, (events) => events.some((e) => e.type === "schedule/added"));
    const pause = (await append(source, { type: "stream/paused", payload: { reason: "by hand" } })).body as EventEnvelope;
    const to = `${root}/paused-tool-fork`;
    expect((await fork(source, { at: pause.offset, to })).status).toBe(201);
    // The timeout comes due while the fork is paused: nothing happens then.
    await sleep(2_500);
    expect(own(await readAll(gw.url, to)).map((e) => e.type)).toEqual(["stream/forked"]);
    expect((await request(`${gw.url}/streams${to}/resume`, { body: {} })).status).toBe(201);
    const events = await until(to, (e) => own(e).some((x) => x.type === "agent/tool-call-settled") && settled(own(e)).length === 1, 15_000);
    expect(own(events).filter((e) => e.type === "agent/tool-call-timed-out")).toHaveLength(1);
    await append(source, { type: "schedule/cancelled", payload: { slug: "unused" } }).catch(() => undefined);
  }, 40_000);

  it("starts the breaker from the inherited state: its limits, and the copies are not load", async () => {
    const source = `${root}/breaker`;
    await append(source, { type: "stream/circuit-breaker-configured", payload: { maxEventsPerSecond: 2, burst: 5 } });
    await append(source, [0, 1, 2].map((n) => ({ type: "note/added", payload: { n } })));
    await sleep(2_500);
    const last = (await append(source, [3, 4, 5].map((n) => ({ type: "note/added", payload: { n } })))).body as EventEnvelope[];
    const to = `${root}/breaker-fork`;
    expect((await fork(source, { at: (last.at(-1) as EventEnvelope).offset, to })).status).toBe(201);
    // Eight events copied at once did not trip it: history is folded, not counted as it arrives.
    await sleep(1_500);
    expect((await readAll(gw.url, to)).some((e) => e.type === "stream/paused")).toBe(false);
    expect((await readAll(gw.url, source)).some((e) => e.type === "stream/paused")).toBe(false);
    // Eight new events at once trip it at the inherited burst of 5 (the default is 100).
    await append(to, Array.from({ length: 8 }, (_, n) => ({ type: "note/added", payload: { n } })));
    const paused = await until(to, (events) => own(events).some((e) => e.type === "stream/paused"), 10_000);
    expect(own(paused).find((e) => e.type === "stream/paused")?.source?.processor).toMatch(/^breaker/);
  }, 30_000);

  it("inherits a pause, and takes up what was open when the fork is resumed: a request in flight, schedules", async () => {
    const source = `${root}/paused`;
    model.fallback = () => ({ chunks: ["slow", " answer"], chunkDelayMs: 400 });
    await append(source, { type: "schedule/added", payload: { slug: "tick", append: { type: "tick/fired" }, schedule: { kind: "every", seconds: 1 } } });
    await say(source, "question before the pause");
    await until(source, (events) => events.some((e) => e.type === "agent/llm-request-started"));
    const pause = (await append(source, { type: "stream/paused", payload: { reason: "by hand" } })).body as EventEnvelope;
    await append(source, { type: "schedule/cancelled", payload: { slug: "tick" } }).catch(() => undefined);
    const to = `${root}/paused-fork`;
    const before = model.requests.length;
    expect((await fork(source, { at: pause.offset, to })).status).toBe(201);
    expect((await append(to, { type: "note/added", payload: {} })).status).toBe(423);
    // Paused: nothing is taken up.
    await sleep(2_000);
    expect(own(await readAll(gw.url, to)).map((e) => e.type)).toEqual(["stream/forked"]);
    expect(model.requests.length).toBe(before);

    model.fallback = () => ({ chunks: ["ok"] });
    expect((await request(`${gw.url}/streams${to}/resume`, { body: {} })).status).toBe(201);
    const events = await until(to, (e) => settled(own(e)).length === 2 && own(e).some((x) => x.type === "tick/fired"), 15_000);
    const [cancelled, answered] = settled(own(events)).map((e) => e.payload as { result: { status: string } });
    expect(cancelled?.result.status).toBe("cancelled");
    expect(answered?.result.status).toBe("succeeded");
    expect((await append(to, { type: "note/added", payload: {} })).status).toBe(201);
    await append(to, { type: "schedule/cancelled", payload: { slug: "tick" } });
  }, 40_000);

  it("refuses a fork another writer appended to while it was being copied (FORK_INTERRUPTED), and keeps it refused", async () => {
    const source = `${root}/interrupted`;
    await append(source, { type: "stream/circuit-breaker-configured", payload: { maxEventsPerSecond: 100_000, burst: 100_000 } });
    for (let batch = 0; batch < 20; batch++) await append(source, Array.from({ length: 1000 }, (_, n) => ({ type: "note/added", payload: { n } })));
    const last = (await readAll(gw.url, source)).at(-1) as EventEnvelope;
    const to = `${root}/interrupted-fork`;
    const forking = fork(source, { at: last.offset, to });
    // As soon as the copy has begun, another writer appends to the new path.
    await waitFor(async () => ((await request(`${gw.url}/streams${to}?limit=1`)).status === 200 ? true : undefined), 10_000, "the copy begun");
    const interloper = await append(to, { type: "note/added", payload: { by: "someone else" } });
    expect(interloper.status).toBe(201);
    const reply = (await forking) as unknown as { status: number; body: { error: { code: string } } };
    expect([reply.status, reply.body.error.code]).toEqual([409, "FORK_INTERRUPTED"]);
    const copied = await readAll(gw.url, to);
    expect(copied.some((e) => e.type === "stream/forked")).toBe(false);
    // The history before the other writer's event is an exact prefix of the source's.
    const interloperAt = (interloper.body as EventEnvelope).offset;
    const before = copied.filter((e) => e.offset < interloperAt);
    expect(before.map((e) => e.forkedFrom?.offset)).toEqual((await readAll(gw.url, source)).slice(0, before.length).map((e) => e.offset));
    // Asked again: the path is taken (just after, the fork may still look as if it were being made).
    const again = await waitFor(async () => {
      const reply = await request<{ error: { code: string } }>(`${gw.url}/streams${source}/fork`, { body: { at: last.offset, to } });
      return reply.body.error.code === "FORK_IN_PROGRESS" ? undefined : reply;
    }, 15_000, "the interrupted fork's path refused");
    expect([again.status, again.body.error.code]).toEqual([409, "STREAM_EXISTS"]);
  }, 60_000);

  it("translates every offset an inherited event names, and carries the inbound webhook secret over", async () => {
    const source = `${root}/offsets`;
    const secret = `whsec_${Buffer.from("a-shared-secret-of-24-by").toString("base64")}`;
    await append(source, { type: "webhook/inbound-configured", payload: { secret } });
    const first = (await append(source, { type: "note/added", payload: {} })).body as EventEnvelope;
    await append(source, [
      { type: "stream/error-occurred", payload: { processor: "p", message: "m", offset: first.offset }, source: { processor: "p", causationOffset: first.offset } },
      { type: "subscription/delivery-failed", payload: { slug: "s", offset: first.offset, attempts: 3, error: "e" } },
      { type: "stream/paused", payload: { reason: "r", triggerOffset: first.offset } },
    ]);
    const last = (await readAll(gw.url, source)).at(-1) as EventEnvelope;
    const to = `${root}/offsets-fork`;
    expect((await fork(source, { at: last.offset, to })).status).toBe(201);
    const copy = await readAll(gw.url, to);
    const firstCopy = copy.find((e) => e.forkedFrom?.offset === first.offset) as EventEnvelope;
    const named = (type: string, field: string) => (copy.find((e) => e.type === type)?.payload as Record<string, number>)[field];
    expect(named("stream/error-occurred", "offset")).toBe(firstCopy.offset);
    expect(copy.find((e) => e.type === "stream/error-occurred")?.source?.causationOffset).toBe(firstCopy.offset);
    expect(named("subscription/delivery-failed", "offset")).toBe(firstCopy.offset);
    expect(named("stream/paused", "triggerOffset")).toBe(firstCopy.offset);
    // The fork's inbound webhooks verify with the source's secret (sealed again for the fork).
    expect((await request(`${gw.url}/streams${to}/resume`, { body: {} })).status).toBe(201);
    const body = '{"n":1}';
    const now = new Date();
    const signed = { "content-type": "application/json", "webhook-id": "msg_fork", "webhook-timestamp": String(Math.floor(now.getTime() / 1000)), "webhook-signature": new Webhook(secret).sign("msg_fork", now, body) };
    expect((await request(`${gw.url}/hooks${to}`, { rawBody: body, headers: signed })).status).toBe(201);
    expect((await request(`${gw.url}/hooks${to}`, { rawBody: body, headers: { "content-type": "application/json" } })).status).toBe(401);
  });

  it("answers the same fork asked again with the first one, and refuses a longer stream than FORK_MAX_EVENTS", async () => {
    const source = `${root}/again`;
    const first = (await append(source, { type: "note/added", payload: {} })).body as EventEnvelope;
    await append(source, { type: "note/added", payload: {} });
    const to = `${root}/again-fork`;
    const made = await fork(source, { at: first.offset, to });
    expect(made.status).toBe(201);
    // The fork goes on (a new input) before the client, whose answer was lost, asks again.
    await append(to, { type: "note/added", payload: { after: "the fork" } });
    const again = await fork(source, { at: first.offset, to });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(made.body);
    expect((await fork(source, { at: first.offset + 1, to })).status).toBe(409);

    const small = await startGateway({ FORK_MAX_EVENTS: "1" });
    try {
      const refused = await request<{ error: { code: string } }>(`${small.url}/streams${source}/fork`, { body: { at: first.offset, to: `${root}/again-too-large` } });
      expect([refused.status, refused.body.error.code]).toEqual([413, "FORK_TOO_LARGE"]);
    } finally {
      await small.close();
    }
  });

  it("copies a chained log right while other streams are busy (every guess of where a copy lands is checked)", async () => {
    const source = `${root}/chained`;
    // Batches this large would trip the breaker and pause the stream part-way.
    await append(source, { type: "stream/circuit-breaker-configured", payload: { maxEventsPerSecond: 100_000, burst: 100_000 } });
    let last = ((await append(source, { type: "note/added", payload: { n: 0 } })).body as EventEnvelope).offset;
    for (let batch = 0; batch < 4; batch++) {
      // Each event names the one before it, as an agent's reactions do.
      const events = Array.from({ length: 500 }, (_, i) => ({ type: "note/added", payload: { n: batch * 500 + i + 1 }, source: { processor: "chain", causationOffset: last + i } }));
      const stored = (await append(source, events)).body as EventEnvelope[];
      // Offsets are contiguous when nothing else is appended: the chain names what it means to.
      expect(stored.map((e) => e.offset)).toEqual(stored.map((_, i) => last + 1 + i));
      last = (stored.at(-1) as EventEnvelope).offset;
    }
    const busy = { on: true };
    const noise = (async () => {
      for (let n = 0; busy.on; n++) await append(`${root}/chained-noise`, Array.from({ length: 20 }, () => ({ type: "noise" })));
    })();
    const to = `${root}/chained-fork`;
    const reply = await fork(source, { at: last, to });
    busy.on = false;
    await noise;
    expect(reply.status, JSON.stringify(reply.body)).toBe(201);
    const original = await readAll(gw.url, source);
    const copy = (await readAll(gw.url, to)).slice(0, -1);
    expect(copy.map((e) => e.forkedFrom?.offset)).toEqual(original.map((e) => e.offset));
    const forkOffsetOf = new Map(copy.map((e) => [e.forkedFrom?.offset, e.offset]));
    const wrong = copy.filter((e, i) => e.source !== undefined && e.source.causationOffset !== forkOffsetOf.get(original[i]?.source?.causationOffset));
    expect(wrong.map((e) => e.offset)).toEqual([]);
  }, 60_000);

  it("refuses what it cannot do, with precise errors", async () => {
    const source = `${root}/errors`;
    const first = (await append(source, { type: "note/added", payload: {} })).body as EventEnvelope;
    const other = (await append(`${root}/elsewhere`, { type: "note/added", payload: {} })).body as EventEnvelope;
    const code = async (body: unknown, path = source) => {
      const reply = await request<{ error: { code: string } }>(`${gw.url}/streams${path}/fork`, { body });
      return [reply.status, reply.body.error.code];
    };
    expect(await code({ at: other.offset, to: `${root}/e1` })).toEqual([400, "OFFSET_NOT_IN_STREAM"]);
    expect(await code({ at: 99_999_999, to: `${root}/e1` })).toEqual([400, "OFFSET_NOT_IN_STREAM"]);
    expect(await code({ at: first.offset, to: `${root}/elsewhere` })).toEqual([409, "STREAM_EXISTS"]);
    expect(await code({ at: first.offset, to: source })).toEqual([409, "STREAM_EXISTS"]);
    // A path the Durable Streams face holds a stream at is taken too.
    expect((await fetch(`${gw.url}/v1/stream${root}/a-durable-stream`, { method: "PUT", headers: { "content-type": "text/plain" }, body: "x" })).status).toBe(201);
    expect(await code({ at: first.offset, to: `${root}/a-durable-stream` })).toEqual([409, "STREAM_EXISTS"]);
    expect(await code({ at: first.offset })).toEqual([400, "BAD_REQUEST"]);
    expect(await code({ at: first.offset, to: "/x/fork" })).toEqual([400, "BAD_REQUEST"]);
    expect(await code({ at: first.offset, to: `${root}/e2`, extra: 1 })).toEqual([400, "BAD_REQUEST"]);
    // Nobody but the fork route writes forkedFrom.
    const forged = await request<{ error: { code: string } }>(`${gw.url}/streams${source}`, { body: { type: "note/added", forkedFrom: { path: "/x", offset: 1 } } });
    expect([forged.status, forged.body.error.code]).toEqual([400, "INVALID_EVENT"]);
    expect(await code({ at: first.offset, to: `${root}/e3` }, `${root}/never-written`)).toEqual([400, "OFFSET_NOT_IN_STREAM"]);
    // `fork` is a reserved last segment, as `resume` and `state` are.
    expect((await append(`${root}/fork`, { type: "note/added" })).status).toBe(400);
  });

  it("forks a fork: a reader sees each event's immediate source", async () => {
    const source = `${root}/lineage`;
    const first = (await append(source, { type: "note/added", payload: { n: 1 } })).body as EventEnvelope;
    const one = `${root}/lineage-1`;
    const forked = await fork(source, { at: first.offset, to: one });
    const two = `${root}/lineage-2`;
    expect((await fork(one, { at: forked.body.forked.offset, to: two })).status).toBe(201);
    const events = await readAll(gw.url, two);
    expect(events.map((e) => [e.type, e.forkedFrom?.path])).toEqual([
      ["note/added", one],
      ["stream/forked", one],
      ["stream/forked", undefined],
    ]);
  });

  it("is one command in the CLI: agentmesh fork <path> --at <offset> --to <path>", async () => {
    const run = promisify(execFile);
    const cli = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        const { stdout, stderr } = await run(process.execPath, [join(process.cwd(), "gateway", "cli", "agentmesh.mjs"), ...args], { env: { ...process.env, AGENTMESH_URL: gw.url, NO_COLOR: "1" } });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const failed = err as { code?: number; stdout?: string; stderr?: string };
        return { code: failed.code ?? 1, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
      }
    };
    const source = `${root}/cli`;
    const first = (await append(source, { type: "note/added", payload: { n: 1 } })).body as EventEnvelope;
    await append(source, { type: "note/added", payload: { n: 2 } });
    const made = await cli(["fork", source, "--at", String(first.offset), "--to", `${root}/cli-fork`, "--json"]);
    expect(made.code, made.stderr).toBe(0);
    expect((JSON.parse(made.stdout) as ForkReply).events).toBe(1);
    expect((await readAll(gw.url, `${root}/cli-fork`)).map((e) => e.type)).toEqual(["note/added", "stream/forked"]);
    // Asked again, the same fork is answered as made; another one onto the same path is refused.
    expect((await cli(["fork", source, "--at", String(first.offset), "--to", `${root}/cli-fork`])).code).toBe(0);
    const other = await cli(["fork", source, "--at", String(first.offset + 1), "--to", `${root}/cli-fork`]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain("STREAM_EXISTS");
    expect((await cli(["fork", source, "--at", "first", "--to", `${root}/cli-other`])).code).toBe(2);
    expect((await cli(["fork", source, "--to", `${root}/cli-other`])).code).toBe(2);
  });
});
