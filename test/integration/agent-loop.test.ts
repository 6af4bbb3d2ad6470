import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { buildLlm } from "../../processors/llm/service.js";
import { buildScheduler } from "../../processors/scheduler/service.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { readAll, runBuiltProcessor, runProcessor, toolOwner, uniqueName, waitFor, waitForConsumer, waitForSettledProcessor } from "../support/processors.js";
import { openSse } from "../support/sse.js";

let gw: TestGateway;
let model: ModelServer;
const running: RunningProcessor[] = [];
const root = uniquePath("agents");
const filterSubject = `${eventsSubject(parseStreamPath(root))}.>`;

beforeAll(async () => {
  gw = await startGateway();
  model = await startModelServer();
  const env = { LLM_BASE_URL: model.baseURL, LLM_MODEL: "test-model", LLM_MAX_RETRIES: "2", PROCESSOR_SUBJECT_FILTER: filterSubject };
  running.push(await runBuiltProcessor("llm", (deps) => Promise.resolve(buildLlm(deps, { ...process.env, ...env })), { ...env, PROCESSOR_NAME: uniqueName("llm") }));
  running.push(await runBuiltProcessor("scheduler", (deps) => buildScheduler(deps), { PROCESSOR_NAME: uniqueName("scheduler"), PROCESSOR_SUBJECT_FILTER: filterSubject }));
});
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await model.close();
  await gw.close();
});
beforeEach(() => {
  model.script = [];
  model.fallback = () => ({ chunks: ["ok"] });
});

const append = (path: string, body: unknown) => request<EventEnvelope | EventEnvelope[]>(`${gw.url}/streams${path}`, { body });
const say = (path: string, content: string, trigger?: string) => append(path, { type: "agent/input-added", payload: { role: "user", content, ...(trigger === undefined ? {} : { trigger }) } });
const types = (events: EventEnvelope[]) => events.map((e) => e.type);
const settledResults = (events: EventEnvelope[]) => events.filter((e) => e.type === "agent/llm-request-settled").map((e) => (e.payload as { result: { status: string; text?: string } }).result);

async function until(path: string, predicate: (events: EventEnvelope[]) => boolean, timeoutMs = 15_000): Promise<EventEnvelope[]> {
  return waitFor(async () => {
    const events = await readAll(gw.url, path);
    return predicate(events) ? events : undefined;
  }, timeoutMs, `condition on ${path}`);
}
const settledCount = (n: number) => (events: EventEnvelope[]) => settledResults(events).length >= n;

/** Settles the calls of `tools`, each given the call's parsed arguments. */
const callsTools = (name: string, tools: Record<string, (args: unknown) => unknown>) => toolOwner(name, filterSubject, (call) => tools[call.name]?.(JSON.parse(call.arguments || "{}")));

describe("agent loop with a real model server", () => {
  it("answers with streamed chunks visible on SSE, storing only the settled answer", async () => {
    const path = `${root}/plain`;
    const sse = await openSse(`${gw.url}/streams${path}?live=sse`);
    model.script = [{ chunks: ["Hel", "lo ", "wor", "ld"], chunkDelayMs: 80 }];
    await say(path, "hi");
    const events = await until(path, settledCount(1));
    expect(types(events)).toEqual(["agent/input-added", "agent/llm-request-started", "agent/llm-request-settled"]);
    const started = events[1] as EventEnvelope;
    expect(started.payload).toEqual({ model: "test-model" });
    expect(events[2]?.payload).toEqual({ requestOffset: started.offset, result: { status: "succeeded", text: "Hello world", toolCalls: [], usage: { promptTokens: 10, completionTokens: 4 } } });
    await sse.waitFor((m) => m.filter((x) => x.id !== undefined).length === 3);
    const chunks = sse.messages.filter((m) => m.id === undefined).map((m) => (m.data as { payload: { requestOffset: number; sequence: number; text: string } }).payload);
    expect(chunks.length).toBeGreaterThanOrEqual(2);
    expect(chunks.map((c) => c.text).join("")).toBe("Hello world");
    expect(chunks.map((c) => c.sequence)).toEqual(chunks.map((_, i) => i));
    expect(chunks.every((c) => c.requestOffset === started.offset)).toBe(true);
    expect(model.requests.at(-1)?.messages).toEqual([{ role: "user", content: "hi" }]);
    sse.abort();
  });

  it("runs a two-tool-call round trip and sends the results back to the model", async () => {
    const path = `${root}/tools`;
    const owner = await runProcessor(callsTools(uniqueName("tools"), { get_time: () => ({ time: "12:00" }), calculate: (args) => ({ value: (args as { a: number; b: number }).a + (args as { a: number; b: number }).b }) }));
    running.push(owner);
    await append(path, { type: "agent/configured", payload: { systemPrompt: "Be brief.", tools: [{ name: "get_time", description: "now" }, { name: "calculate", description: "adds", parameters: { type: "object", properties: { a: { type: "number" }, b: { type: "number" } } } }] } });
    model.script = [
      { toolCalls: [{ id: "call_1", name: "get_time", arguments: "{}" }, { id: "call_2", name: "calculate", arguments: '{"a":1,"b":2}' }] },
      { chunks: ["It is 12:00 and 1+2=3."] },
    ];
    const requestsBefore = model.requests.length;
    await say(path, "time and sum?");
    const events = await until(path, settledCount(2));
    expect(types(events)).toEqual([
      "agent/configured",
      "agent/input-added",
      "agent/llm-request-started",
      "agent/llm-request-settled",
      "agent/tool-call-requested",
      "agent/tool-call-requested",
      "schedule/added",
      "schedule/added",
      "agent/tool-call-settled",
      "agent/tool-call-settled",
      "agent/llm-request-started",
      "agent/llm-request-settled",
    ]);
    expect(settledResults(events).at(-1)).toMatchObject({ status: "succeeded", text: "It is 12:00 and 1+2=3." });
    const second = model.requests[requestsBefore + 1];
    expect(second?.messages[0]).toEqual({ role: "system", content: "Be brief." });
    expect(second?.messages.slice(2).map((m) => m.role)).toEqual(["assistant", "tool", "tool"]);
    expect(second?.messages.filter((m) => m.role === "tool").map((m) => [m.tool_call_id, m.content]).sort()).toEqual([
      ["call_1", '{"time":"12:00"}'],
      ["call_2", '{"value":3}'],
    ]);
    expect(model.requests[requestsBefore]?.tools).toHaveLength(2);
  });

  it("cancels the request in flight on an interrupting input, keeping the partial text, then answers the new input", async () => {
    const path = `${root}/interrupt`;
    model.script = [{ chunks: Array.from({ length: 60 }, (_, i) => `w${i} `), chunkDelayMs: 50 }, { chunks: ["stopped"] }];
    const requestsBefore = model.requests.length;
    await say(path, "tell me a long story");
    await waitFor(() => Promise.resolve(model.requests.length > requestsBefore ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 400));
    await say(path, "stop", "interrupt");
    const events = await until(path, settledCount(2));
    const [cancelled, answered] = settledResults(events) as { status: string; partialText?: string; reason?: string; text?: string }[];
    expect(cancelled?.status).toBe("cancelled");
    expect(cancelled?.partialText).toMatch(/^w0 w1 /);
    expect(cancelled?.reason).toContain("interrupted");
    expect(answered).toMatchObject({ status: "succeeded", text: "stopped" });
    expect(model.requests[requestsBefore]?.aborted).toBe(true);
    // The new request sees the partial answer, then the interrupting input.
    expect(model.requests.at(-1)?.messages.slice(-2)).toEqual([
      { role: "assistant", content: cancelled?.partialText },
      { role: "user", content: "stop" },
    ]);
  });

  it("pauses the agent after maxAutonomousTurns requests without outside input, and resumes on stream/resumed", async () => {
    const path = `${root}/runaway`;
    const owner = await runProcessor(callsTools(uniqueName("looper"), { again: () => ({ more: true }) }));
    running.push(owner);
    await append(path, { type: "agent/configured", payload: { maxAutonomousTurns: 3, tools: [{ name: "again" }] } });
    let n = 0;
    model.fallback = () => ({ toolCalls: [{ id: `call_${++n}`, name: "again", arguments: "{}" }] });
    await say(path, "loop");
    const events = await until(path, (e) => types(e).includes("agent/paused"));
    expect(events.filter((e) => e.type === "agent/llm-request-started")).toHaveLength(3);
    expect((events.find((e) => e.type === "agent/paused")?.payload as { reason: string }).reason).toContain("maxAutonomousTurns 3");
    expect((await say(path, "hello?")).status).toBe(423);
    // Refused means not stored.
    expect(await readAll(gw.url, path)).toEqual(events);
    model.fallback = () => ({ chunks: ["done"] });
    expect((await request(`${gw.url}/streams${path}/resume`, { body: { reason: "checked" } })).status).toBe(201);
    const resumed = await until(path, (e) => settledResults(e).some((r) => r.text === "done"));
    expect(resumed.filter((e) => e.type === "agent/llm-request-started")).toHaveLength(4);
  });

  it("retries a model 500 through the SDK and succeeds", async () => {
    const path = `${root}/retry`;
    model.script = [{ status: 500 }, { chunks: ["recovered"] }];
    const requestsBefore = model.requests.length;
    await say(path, "hello");
    const events = await until(path, settledCount(1));
    expect(settledResults(events)).toEqual([expect.objectContaining({ status: "succeeded", text: "recovered" })]);
    expect(model.requests.length - requestsBefore).toBe(2);
  });

  it("settles a tool call nobody answers with an error after toolTimeoutSeconds, keeping the history valid", async () => {
    const path = `${root}/timeout`;
    await append(path, { type: "agent/configured", payload: { toolTimeoutSeconds: 1, tools: [{ name: "nobody_owns_me" }] } });
    model.script = [{ toolCalls: [{ id: "call_lost", name: "nobody_owns_me", arguments: "{}" }] }, { chunks: ["gave up on the tool"] }];
    await say(path, "use the tool");
    const events = await until(path, settledCount(2), 20_000);
    const settled = events.find((e) => e.type === "agent/tool-call-settled");
    expect(settled?.payload).toEqual({ callId: "call_lost", error: "no result within 1 s" });
    expect(settled?.source?.processor).toContain("llm");
    expect(model.requests.at(-1)?.messages.at(-1)).toEqual({ role: "tool", tool_call_id: "call_lost", content: "error: no result within 1 s" });
  });

  it("survives kill -9 mid-request: after a restart the request runs again and settles exactly once", async () => {
    const crashRoot = uniquePath("crash");
    const path = `${crashRoot}/bot`;
    const name = uniqueName("llm-crash");
    const env = {
      ...process.env,
      NATS_URL: inject("natsUrl"),
      LOG_LEVEL: "error",
      LLM_BASE_URL: model.baseURL,
      PROCESSOR_NAME: name,
      PROCESSOR_SUBJECT_FILTER: `${eventsSubject(parseStreamPath(crashRoot))}.>`,
      PROCESSOR_ACK_WAIT_MS: "2000",
    };
    const spawnLlm = () => {
      const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "../../deploy/local/processor.ts"), "llm"], { env, stdio: "ignore" });
      return { child, exited: new Promise((resolve) => child.once("exit", resolve)) };
    };
    const victim = spawnLlm();
    try {
      await waitForConsumer(gw.nats, name);
      model.script = [{ chunks: Array.from({ length: 100 }, () => "slow "), chunkDelayMs: 50 }, { chunks: ["after the crash"] }];
      const requestsBefore = model.requests.length;
      await say(path, "hi");
      await waitFor(() => Promise.resolve(model.requests.length > requestsBefore ? true : undefined), 10_000, "first model request");
      await new Promise((resolve) => setTimeout(resolve, 200));
      victim.child.kill("SIGKILL");
      await victim.exited;
      const survivor = spawnLlm();
      try {
        const events = await until(path, settledCount(1), 30_000);
        // Not a sleep against the 2 s ack wait: the consumer has every event acknowledged (the killed replica's
        // delivery included), so the log is final.
        await waitForSettledProcessor(gw.nats, name, events.at(-1)?.offset ?? 0, 30_000);
        const final = await readAll(gw.url, path);
        expect(types(final)).toEqual(["agent/input-added", "agent/llm-request-started", "agent/llm-request-settled"]);
        expect(settledResults(events)[0]).toMatchObject({ status: "succeeded", text: "after the crash" });
        expect(model.requests.length - requestsBefore).toBe(2);
      } finally {
        survivor.child.kill("SIGTERM");
        await survivor.exited;
      }
    } finally {
      victim.child.kill("SIGKILL");
    }
  }, 60_000);
});
