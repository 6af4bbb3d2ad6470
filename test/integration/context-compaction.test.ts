import { countTokens } from "gpt-tokenizer/encoding/o200k_base";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import type { ModelRequest } from "../../shared/state/conversation.js";
import { buildLlm } from "../../processors/llm/service.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { defaultUsage, startModelServer, type ModelServer, type RecordedRequest } from "../support/model-server.js";
import { readAll, runBuiltProcessor, runProcessor, toolOwner, uniqueName, waitFor } from "../support/processors.js";

/**
 * Context compaction (docs/ARCHITECTURE.md, "Context compaction"): with a model whose window is small, a long
 * conversation never sends a request larger than the window; what replaced the oldest messages is a summary the
 * model wrote (or nothing, when it could not), tool calls stay with their results, the request each start sends is
 * the one the log gives, and a fork taken before a compaction sends the whole history.
 */
const WINDOW = 1_000;
let gw: TestGateway;
let model: ModelServer;
const running: RunningProcessor[] = [];
const root = uniquePath("compaction");
const filterSubject = `${eventsSubject(parseStreamPath(root))}.>`;

/**
 * A request's size measured apart from the llm processor's own count: the tokens of its JSON, which counts every
 * quote and brace, so more than the model's own chat format does. The model server reports this as its usage.
 */
function measure(recorded: RecordedRequest): number {
  return countTokens(JSON.stringify({ messages: recorded.messages, tools: recorded.tools ?? [] }), { disallowedSpecial: new Set() });
}

const isSummaryRequest = (recorded: RecordedRequest) => recorded.tools === undefined && (recorded.messages[0]?.content ?? "").startsWith("You compact");
const lorem = (words: number) => "lorem ipsum dolor sit amet ".repeat(Math.ceil(words / 5)).split(" ").slice(0, words).join(" ");

beforeAll(async () => {
  gw = await startGateway();
  model = await startModelServer();
  const env = { LLM_BASE_URL: model.baseURL, LLM_MODEL: "small-model", LLM_MAX_RETRIES: "0", LLM_CONTEXT_WINDOWS: JSON.stringify({ "small-model": WINDOW }), LLM_COMPACT_AT: "0.5", PROCESSOR_SUBJECT_FILTER: filterSubject };
  running.push(await runBuiltProcessor("llm", (deps) => Promise.resolve(buildLlm(deps, { ...process.env, ...env })), { ...env, PROCESSOR_NAME: uniqueName("llm") }));
  running.push(await runProcessor(toolOwner(uniqueName("tools"), filterSubject, (call) => ({ found: `${lorem(20)} for ${call.arguments}` }))));
});
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await model.close();
  await gw.close();
});

let summaries = 0;
beforeEach(() => {
  model.script = [];
  model.usage = (recorded, answer) => ({ prompt_tokens: measure(recorded), completion_tokens: defaultUsage(recorded, answer).completion_tokens });
  model.fallback = (recorded) => {
    if (isSummaryRequest(recorded)) return { chunks: [`SUMMARY-${++summaries}: the user went through numbered turns`, " and looked things up with the tool."] };
    const last = recorded.messages.at(-1);
    const n = model.requests.length;
    if (last?.role === "user" && (last.content ?? "").includes("use the tool")) return { toolCalls: [{ id: `call_${n}_a`, name: "lookup", arguments: `{"q":${n}}` }, { id: `call_${n}_b`, name: "lookup", arguments: `{"q":${n + 1}}` }] };
    return { chunks: [`answer ${n}: `, lorem(25)] };
  };
});

const append = (path: string, body: unknown) => request<EventEnvelope | EventEnvelope[]>(`${gw.url}/streams${path}`, { body });
const say = (path: string, content: string) => append(path, { type: "agent/input-added", payload: { role: "user", content } });
const ofType = (events: EventEnvelope[], type: string) => events.filter((e) => e.type === type);
interface Compacted {
  summary: string;
  throughOffset: number;
  method: string;
  tokensBefore: number;
  tokensAfter: number;
}

/** Appends an input and waits until the loop is idle again: its last request answered without tool calls. */
async function converse(path: string, content: string): Promise<EventEnvelope[]> {
  const sent = (await say(path, content)).body as EventEnvelope;
  return waitFor(async () => {
    const events = await readAll(gw.url, path);
    const last = events.at(-1);
    const answered = last !== undefined && last.offset > sent.offset && last.type === "agent/llm-request-settled" && (last.payload as { result: { toolCalls?: unknown[] } }).result.toolCalls?.length === 0;
    return answered ? events : undefined;
  }, 15_000, `an answer to "${content.slice(0, 20)}" on ${path}`);
}

/** The OpenAI wire form of a request, as the llm processor's client sends it (processors/llm/model-client.ts). */
function wire(sent: ModelRequest): unknown[] {
  const system = sent.systemPrompt === undefined ? [] : [{ role: "system", content: sent.systemPrompt }];
  return [
    ...system,
    ...sent.messages.map((m) => {
      if (m.role === "tool") return { role: "tool", tool_call_id: m.toolCallId, content: m.content };
      if (m.role !== "assistant" || m.toolCalls.length === 0) return { role: m.role, content: m.content };
      return { role: "assistant", content: m.content === "" ? null : m.content, tool_calls: m.toolCalls.map((c) => ({ id: c.callId, type: "function", function: { name: c.name, arguments: c.arguments } })) };
    }),
  ];
}

/** Every assistant tool call is followed by its results, and every result follows its call, within one request. */
function toolCallsWhole(recorded: RecordedRequest): boolean {
  const messages = recorded.messages;
  for (const [index, message] of messages.entries()) {
    if (message.role === "assistant" && (message.tool_calls ?? []).length > 0) {
      const ids = (message.tool_calls as { id: string }[]).map((c) => c.id).sort();
      const results = messages.slice(index + 1, index + 1 + ids.length).map((m) => (m.role === "tool" ? m.tool_call_id : undefined));
      if (JSON.stringify(results.sort()) !== JSON.stringify(ids)) return false;
    }
    if (message.role === "tool") {
      const call = messages.slice(0, index).findLast((m) => m.role === "assistant");
      if (!(call?.tool_calls as { id: string }[] | undefined)?.some((c) => c.id === message.tool_call_id)) return false;
    }
  }
  return true;
}

describe("context compaction with a model whose window is small", () => {
  it("never sends more than the window, sends the summary, keeps tool calls whole, sends what the log gives; a fork from before sends everything", async () => {
    const path = `${root}/long`;
    await append(path, { type: "agent/configured", payload: { systemPrompt: "You answer briefly.", tools: [{ name: "lookup", description: "looks a thing up", parameters: { type: "object", properties: { q: { type: "number" } } } }] } });
    const first = model.requests.length;
    let events: EventEnvelope[] = [];
    for (let turn = 0; turn < 24; turn++) events = await converse(path, `turn ${turn}: ${lorem(30)}${turn % 3 === 1 ? " use the tool" : ""}`);
    const requests = model.requests.slice(first);

    // Several compactions, each by a summary, each cutting further.
    const compactions = ofType(events, "agent/context-compacted");
    expect(compactions.length).toBeGreaterThanOrEqual(3);
    const payloads = compactions.map((e) => e.payload as Compacted);
    expect(payloads.every((p) => p.method === "summary" && p.summary.startsWith("SUMMARY-") && p.tokensAfter < p.tokensBefore)).toBe(true);
    expect(payloads.map((p) => p.throughOffset)).toEqual([...payloads.map((p) => p.throughOffset)].sort((a, b) => a - b));
    // Each was decided with the start of the request it made room for: the next event is that start.
    for (const compaction of compactions) expect(events[events.indexOf(compaction) + 1]?.type).toBe("agent/llm-request-started");

    // No request was larger than the window (measured generously), nor split a tool call from its results.
    const sizes = requests.map(measure);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(WINDOW);
    expect(requests.every(toolCallsWhole)).toBe(true);
    expect(requests.filter(isSummaryRequest)).toHaveLength(compactions.length);

    // Every request after a compaction carries its summary, right after the system prompt, and not the first turn.
    const chatRequests = requests.filter((r) => !isSummaryRequest(r));
    const last = chatRequests.at(-1) as RecordedRequest;
    expect(last.messages[0]).toEqual({ role: "system", content: "You answer briefly." });
    expect(last.messages[1]?.role).toBe("system");
    expect(last.messages[1]?.content).toContain((payloads.at(-1) as Compacted).summary);
    expect(last.messages.some((m) => (m.content ?? "").startsWith("turn 0:"))).toBe(false);

    // What each start sent is what the log gives for it (the state view the console shows).
    const starts = ofType(events, "agent/llm-request-started");
    for (const [index, start] of starts.entries()) {
      const view = await request<{ processors: { llm: { state: { request: ModelRequest } } } }>(`${gw.url}/streams${path}/state?processor=llm&at=${start.offset}`);
      expect(wire(view.body.processors.llm.state.request), `request ${index}`).toEqual(chatRequests[index]?.messages);
    }

    // The state sums every request's usage, the summaries' included.
    const usage = await request<{ processors: { llm: { state: { usage: { promptTokens: number; completionTokens: number } } } } }>(`${gw.url}/streams${path}/state?processor=llm`);
    expect(usage.body.processors.llm.state.usage.promptTokens).toBe(requests.reduce((sum, r) => sum + measure(r), 0));

    // A fork from two turns before the first compaction: the whole history so far, no summary.
    const firstCompaction = compactions[0] as EventEnvelope;
    const inputs = ofType(events, "agent/input-added").filter((e) => e.offset < firstCompaction.offset);
    const forkInput = inputs.at(-2) as EventEnvelope;
    const at = (events[events.indexOf(forkInput) - 1] as EventEnvelope).offset;
    const to = `${root}/long-fork`;
    expect((await request(`${gw.url}/streams${path}/fork`, { body: { at, to } })).status).toBe(201);
    const forkFirst = model.requests.length;
    const forkEvents = await converse(to, "hi");
    expect(ofType(forkEvents, "agent/context-compacted").filter((e) => e.forkedFrom === undefined)).toHaveLength(0);
    const forkRequest = model.requests.slice(forkFirst).find((r) => !isSummaryRequest(r)) as RecordedRequest;
    const sourceBefore = chatRequests.find((r) => r.messages.at(-1)?.content === (forkInput.payload as { content: string }).content) as RecordedRequest;
    // Everything the source sent before that turn's input, then the fork's own.
    expect(forkRequest.messages.slice(0, -1)).toEqual(sourceBefore.messages.slice(0, -1));
    expect(forkRequest.messages[1]?.content).toMatch(/^turn 0:/);
    expect(forkRequest.messages.filter((m) => m.role === "system")).toHaveLength(1);
    expect(forkRequest.messages.at(-1)).toEqual({ role: "user", content: "hi" });
  }, 120_000);

  it("drops the oldest messages when the summary request fails, and keeps within the window", async () => {
    const path = `${root}/truncated`;
    const answer = model.fallback;
    model.fallback = (recorded) => (isSummaryRequest(recorded) ? { status: 400 } : answer(recorded));
    await append(path, { type: "agent/configured", payload: { contextWindow: 600 } });
    const first = model.requests.length;
    let events: EventEnvelope[] = [];
    for (let turn = 0; turn < 10; turn++) events = await converse(path, `turn ${turn}: ${lorem(30)}`);
    const compactions = ofType(events, "agent/context-compacted").map((e) => e.payload as Compacted);
    expect(compactions.length).toBeGreaterThanOrEqual(1);
    expect(compactions.every((p) => p.method === "truncation" && p.summary === "")).toBe(true);
    const chatRequests = model.requests.slice(first).filter((r) => !isSummaryRequest(r));
    expect(Math.max(...chatRequests.map(measure))).toBeLessThanOrEqual(600);
    const last = chatRequests.at(-1) as RecordedRequest;
    expect(last.messages.filter((m) => m.role === "system")).toHaveLength(0);
    expect(last.messages[0]?.role).toBe("user");
    expect(last.messages[0]?.content).not.toMatch(/^turn 0:/);
  }, 60_000);
});
