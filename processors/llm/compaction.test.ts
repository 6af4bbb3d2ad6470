import { describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { initialConversation, nextRequest, reduceConversation, runningRequest, type ConversationState } from "../../shared/state/conversation.js";
import { planCompaction } from "./compaction.js";
import { decide } from "./decision.js";
import { priced } from "./pricing.js";
import { estimateRequest, requestTokens } from "./token-count.js";

let offset = 0;
const at = (type: string, payload: unknown = {}): EventEnvelope => ({ streamPath: "/a", offset: ++offset, type, payload, createdAt: "2026-01-01T00:00:00.000Z" });
const run = (events: EventEnvelope[], from: ConversationState = initialConversation()) => events.reduce(reduceConversation, from);
const input = (content: string) => at("agent/input-added", { role: "user", content });
const usage = { promptTokens: 100, completionTokens: 20 };

/** One turn: an input, a request, and its answer (with tool calls and their results when `calls` are given). */
function turn(state: ConversationState, text: string, calls: string[] = []): ConversationState {
  const start = at("agent/llm-request-started", { model: "m" });
  const toolCalls = calls.map((callId) => ({ callId, name: "t", arguments: "{}" }));
  let next = run([input(text), start, at("agent/llm-request-settled", { requestOffset: start.offset, result: { status: "succeeded", text: `re ${text}`, toolCalls, usage } })], state);
  next = run(toolCalls.map((call) => at("agent/tool-call-requested", { requestOffset: start.offset, ...call })), next);
  return run(calls.map((callId) => at("agent/tool-call-settled", { callId, result: `result ${callId}` })), next);
}

describe("context compaction", () => {
  it("cuts only between events, never between tool calls and their results, and keeps the newest message", () => {
    let state = initialConversation();
    for (let i = 0; i < 6; i++) state = turn(state, `question ${i} ${"word ".repeat(40)}`, i % 2 === 0 ? [`c${i}a`, `c${i}b`] : []);
    const messages = state.messages;
    for (const keep of [0, 20, 60, 150, 400, 10_000]) {
      const plan = planCompaction(messages, 0, keep);
      if (plan === null) continue;
      expect(plan.cut).toBeGreaterThan(0);
      expect(plan.cut).toBeLessThan(messages.length);
      expect(messages.countThrough(plan.throughOffset)).toBe(plan.cut);
      expect(messages.at(plan.cut)?.role).not.toBe("tool");
      const before = messages.at(plan.cut - 1);
      expect(before?.role === "assistant" && before.toolCalls.length > 0).toBe(false);
    }
    // A small budget keeps little; a large one compacts as little as a cut before an input allows (the first turn).
    expect(planCompaction(messages, 0, 0)?.cut).toBe(messages.length - 1);
    expect(planCompaction(messages, 0, 10_000)?.cut).toBe(4);
    expect(messages.at(4)?.role).toBe("user");
  });

  it("cuts inside a long run of tool calls when no input is near, between a call's last result and the next request's answer", () => {
    const start = at("agent/llm-request-started", { model: "m" });
    let state = run([input("go"), start]);
    for (let i = 0; i < 5; i++) {
      const requestOffset = state.running?.offset ?? 0;
      const call = { callId: `r${i}`, name: "t", arguments: "{}" };
      state = run([at("agent/llm-request-settled", { requestOffset, result: { status: "succeeded", text: "", toolCalls: [call], usage } }), at("agent/tool-call-requested", { requestOffset, ...call }), at("agent/tool-call-settled", { callId: call.callId, result: "x".repeat(200) }), at("agent/llm-request-started", { model: "m" })], state);
    }
    const plan = planCompaction(state.messages, 0, 150);
    expect(plan).not.toBeNull();
    expect(state.messages.at(plan?.cut ?? 0)?.role).toBe("assistant");
    expect(state.messages.at((plan?.cut ?? 0) - 1)?.role).toBe("tool");
  });

  it("sends the summary in place of the messages through throughOffset, to every later request", () => {
    let state = run([at("agent/configured", { systemPrompt: "sys" })]);
    for (let i = 0; i < 4; i++) state = turn(state, `q${i}`);
    const plan = planCompaction(state.messages, 0, 10);
    expect(plan).not.toBeNull();
    const compacted = at("agent/context-compacted", { summary: "the gist", throughOffset: plan?.throughOffset, method: "summary", tokensBefore: 500, tokensAfter: 100, usage: { promptTokens: 50, completionTokens: 5, costUsd: 0.5 } });
    state = run([compacted, input("next")], state);
    const request = nextRequest(state, "m");
    expect(request.messages[0]).toEqual({ role: "system", content: expect.stringContaining("the gist") as unknown });
    expect(request.messages.slice(1)).toEqual(state.messages.slice(plan?.cut ?? 0));
    const start = at("agent/llm-request-started", { model: "m" });
    state = run([start], state);
    expect(runningRequest(state)?.messages).toEqual(request.messages);
    // The state sums every request's usage and the summary's.
    expect(state.usage).toEqual({ promptTokens: 4 * 100 + 50, completionTokens: 4 * 20 + 5, costUsd: 0.5 });
  });

  it("counts a request from the model's last report plus what came after, or estimates it whole after a compaction", () => {
    const state = run([input("after")], turn(initialConversation(), "q"));
    const request = nextRequest(state, "m");
    expect(requestTokens(state, request)).toBe(120 + (estimateRequest({ ...request, messages: request.messages.slice(-1) }) - estimateRequest({ ...request, messages: [] })));
    const compacted = run([at("agent/context-compacted", { summary: "s", throughOffset: state.messages.offsetAt(1), method: "truncation", tokensBefore: 1, tokensAfter: 1 })], state);
    const after = nextRequest(compacted, "m");
    expect(requestTokens(compacted, after)).toBe(estimateRequest(after));
  });

  it("pauses with reason budget before a request once the tokens or the cost reached the limit", () => {
    const state = turn(initialConversation(), "q");
    expect(decide(run([at("agent/budget-configured", { maxTokens: 121 }), input("more")], state))).toEqual({ kind: "start-request" });
    expect(decide(run([at("agent/budget-configured", { maxTokens: 120 }), input("more")], state))).toMatchObject({ kind: "pause", reason: "budget" });
    expect(priced(usage, "m", { m: { inputPerMillion: 2, outputPerMillion: 10 } })).toEqual({ ...usage, costUsd: (100 * 2 + 20 * 10) / 1e6 });
    expect(priced(usage, "other", { m: { inputPerMillion: 2, outputPerMillion: 10 } })).toEqual(usage);
  });
});
