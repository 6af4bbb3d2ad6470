import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { buildLlm } from "../../processors/llm/service.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { defaultUsage, startModelServer, type ModelServer } from "../support/model-server.js";
import { readAll, runBuiltProcessor, runProcessor, toolOwner, uniqueName, waitFor, waitForSettledProcessor } from "../support/processors.js";

/**
 * Budgets (docs/EVENTS.md, "Budgets"): usage and cost summed per agent from the log; agent/budget-configured pauses
 * the agent with agent/paused {reason: "budget"} before the request that would go past it, never after starting one.
 */
let gw: TestGateway;
let model: ModelServer;
const running: RunningProcessor[] = [];
const root = uniquePath("budgets");
const filterSubject = `${eventsSubject(parseStreamPath(root))}.>`;
const llmName = uniqueName("llm");
/** USD per million tokens: each request below costs 10 × 100 + 2 × 1,000 = 3,000 millionths. */
const PRICES = { "priced-model": { inputPerMillion: 100, outputPerMillion: 1_000 } };

beforeAll(async () => {
  gw = await startGateway();
  model = await startModelServer();
  const env = { LLM_BASE_URL: model.baseURL, LLM_MODEL: "priced-model", LLM_MAX_RETRIES: "0", LLM_PRICES: JSON.stringify(PRICES), PROCESSOR_SUBJECT_FILTER: filterSubject };
  running.push(await runBuiltProcessor("llm", (deps) => Promise.resolve(buildLlm(deps, { ...process.env, ...env })), { ...env, PROCESSOR_NAME: llmName }));
  running.push(await runProcessor(toolOwner(uniqueName("tools"), filterSubject, () => "looked up")));
});
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await model.close();
  await gw.close();
});
beforeEach(() => {
  model.script = [];
  model.usage = defaultUsage;
  // 10 prompt tokens and 2 completion tokens a request (one per chunk).
  model.fallback = (recorded) => {
    const last = recorded.messages.at(-1);
    if (last?.role === "user" && (last.content ?? "").includes("use the tool")) return { chunks: ["on ", "it"], toolCalls: [{ id: `call_${model.requests.length}`, name: "lookup", arguments: "{}" }] };
    return { chunks: ["fine ", "thanks"] };
  };
});

const append = (path: string, body: unknown) => request<EventEnvelope | EventEnvelope[]>(`${gw.url}/streams${path}`, { body });
const say = (path: string, content: string) => append(path, { type: "agent/input-added", payload: { role: "user", content } });
const ofType = (events: EventEnvelope[], type: string) => events.filter((e) => e.type === type);
interface LlmView {
  usage: { promptTokens: number; completionTokens: number; costUsd: number };
  budget: { maxTokens?: number; maxCostUsd?: number } | null;
}
const view = async (path: string) => (await request<{ processors: { llm: { state: LlmView } } }>(`${gw.url}/streams${path}/state?processor=llm`)).body.processors.llm.state;

async function until(path: string, predicate: (events: EventEnvelope[]) => boolean): Promise<EventEnvelope[]> {
  return waitFor(async () => {
    const events = await readAll(gw.url, path);
    return predicate(events) ? events : undefined;
  }, 15_000, `condition on ${path}`);
}
const settledCount = (n: number) => (events: EventEnvelope[]) => ofType(events, "agent/llm-request-settled").length >= n;
const pausedCount = (n: number) => (events: EventEnvelope[]) => ofType(events, "agent/paused").length >= n;
/** Nothing more will happen: the llm processor has handled everything through the stream's last event. */
async function settledLlm(path: string): Promise<EventEnvelope[]> {
  const events = await readAll(gw.url, path);
  await waitForSettledProcessor(gw.nats, llmName, events.at(-1)?.offset ?? 0);
  return readAll(gw.url, path);
}

describe("budgets", () => {
  it("pauses with reason budget before the request that would go past maxTokens, mid tool loop too; the state shows the totals", async () => {
    const path = `${root}/tokens`;
    await append(path, { type: "agent/budget-configured", payload: { maxTokens: 36 } });
    await say(path, "hello");
    await until(path, settledCount(1));
    await say(path, "again");
    await until(path, settledCount(2));
    // 24 tokens used: this turn's first request runs, and its tool call reaches 36: the request after the tool's result does not start.
    await say(path, "now use the tool");
    const events = await until(path, pausedCount(1));
    const paused = ofType(events, "agent/paused")[0] as EventEnvelope;
    expect(paused.payload).toEqual({ reason: "budget" });
    const tail = events.slice(events.findIndex((e) => e.type === "agent/tool-call-settled"));
    expect(tail.map((e) => e.type)).toEqual(["agent/tool-call-settled", "agent/paused"]);
    expect(ofType(events, "agent/llm-request-started")).toHaveLength(3);

    const state = await view(path);
    expect(state.usage).toEqual({ promptTokens: 30, completionTokens: 6, costUsd: expect.closeTo(3 * 0.003, 9) as unknown });
    expect(state.budget).toEqual({ maxTokens: 36 });
    // Every settled request carries its price.
    expect(ofType(events, "agent/llm-request-settled").map((e) => (e.payload as { result: { usage: { costUsd: number } } }).result.usage.costUsd)).toEqual([0.003, 0.003, 0.003].map((c) => expect.closeTo(c, 9) as unknown));

    // Resumed with the budget still reached: no request, no pause yet; the next input pauses it again.
    const requests = model.requests.length;
    expect((await request(`${gw.url}/streams${path}/resume`, { method: "POST", body: {} })).status).toBe(201);
    let after = await settledLlm(path);
    expect(after.at(-1)?.type).toBe("stream/resumed");
    await say(path, "still there?");
    after = await until(path, pausedCount(2));
    expect(after.slice(-2).map((e) => e.type)).toEqual(["agent/input-added", "agent/paused"]);
    expect(model.requests.length).toBe(requests);

    // Resumed, then the budget raised: the waiting request starts.
    await request(`${gw.url}/streams${path}/resume`, { method: "POST", body: {} });
    await append(path, { type: "agent/budget-configured", payload: { maxTokens: 1_000 } });
    after = await until(path, settledCount(4));
    expect(after.slice(-3).map((e) => e.type)).toEqual(["agent/budget-configured", "agent/llm-request-started", "agent/llm-request-settled"]);
    expect((await view(path)).usage.promptTokens).toBe(40);
  });

  it("counts a model that reports no usage with its own estimate, and pauses it at maxTokens all the same", async () => {
    const path = `${root}/unreported`;
    model.usage = () => null;
    await append(path, { type: "agent/budget-configured", payload: { maxTokens: 1 } });
    await say(path, "one");
    await until(path, settledCount(1));
    await say(path, "two");
    const events = await until(path, pausedCount(1));
    expect(events.at(-1)?.payload).toEqual({ reason: "budget" });
    const usage = (ofType(events, "agent/llm-request-settled")[0]?.payload as { result: { usage: { promptTokens: number; completionTokens: number; estimated?: boolean } } }).result.usage;
    expect(usage.estimated).toBe(true);
    expect(usage.promptTokens).toBeGreaterThan(0);
    expect(usage.completionTokens).toBeGreaterThan(0);
    expect(ofType(events, "agent/llm-request-started")).toHaveLength(1);
  });

  it("pauses once the cost priced from LLM_PRICES reaches maxCostUsd", async () => {
    const path = `${root}/cost`;
    await append(path, { type: "agent/budget-configured", payload: { maxCostUsd: 0.005 } });
    await say(path, "one");
    await until(path, settledCount(1));
    await say(path, "two");
    await until(path, settledCount(2));
    await say(path, "three");
    const events = await until(path, pausedCount(1));
    expect(events.at(-1)?.payload).toEqual({ reason: "budget" });
    expect(ofType(events, "agent/llm-request-started")).toHaveLength(2);
    const state = await view(path);
    expect(state.usage.costUsd).toBeCloseTo(0.006, 9);
    expect(state.budget).toEqual({ maxCostUsd: 0.005 });
  });
});
