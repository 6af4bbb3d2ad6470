import { describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { initialConversation, reduceConversation, type ConversationState } from "../../shared/state/conversation.js";
import { decide } from "./decision.js";

let offset = 0;
const at = (type: string, payload: unknown = {}): EventEnvelope => ({ streamPath: "/a", offset: ++offset, type, payload, createdAt: "2026-01-01T00:00:00.000Z" });
const run = (events: EventEnvelope[], from: ConversationState = initialConversation()) => events.reduce(reduceConversation, from);
const input = (content: string, trigger?: string) => at("agent/input-added", { role: "user", content, ...(trigger === undefined ? {} : { trigger }) });
const started = () => at("agent/llm-request-started", { model: "m" });
const succeeded = (requestOffset: number, text: string, toolCalls: { callId: string; name: string; arguments: string }[] = []) =>
  at("agent/llm-request-settled", { requestOffset, result: { status: "succeeded", text, toolCalls, usage: null } });

describe("conversation reducer", () => {
  it("lets 150,000 inputs queue behind an open request and join the conversation after its answer, in order", () => {
    const start = started();
    let state = run([input("first"), start]);
    for (let i = 0; i < 150_000; i++) state = reduceConversation(state, input(`queued ${i}`, "none"));
    state = reduceConversation(state, succeeded(start.offset, "answer"));
    const messages = state.messages.toArray();
    expect(messages).toHaveLength(150_002);
    expect([messages[1]?.content, messages[2]?.content, messages.at(-1)?.content]).toEqual(["answer", "queued 0", "queued 149999"]);
  });

  it("remembers the last 256 settled requests, and an older state keeps its own memory", () => {
    const settle = (state: ConversationState, count: number): { state: ConversationState; offsets: number[] } => {
      const offsets: number[] = [];
      let next = state;
      for (let i = 0; i < count; i++) {
        const start = started();
        offsets.push(start.offset);
        next = run([input(`q${i}`), start, succeeded(start.offset, `a${i}`)], next);
      }
      return { state: next, offsets };
    };
    const first = settle(initialConversation(), 300);
    const later = settle(first.state, 400);
    // The window moved on past compactions of its shared array; the older state still remembers its own 256.
    expect(later.offsets.slice(-256).every((o) => later.state.settledRequests.includes(o))).toBe(true);
    expect([...first.offsets, ...later.offsets.slice(0, -256)].some((o) => later.state.settledRequests.includes(o))).toBe(false);
    expect(first.offsets.slice(-256).every((o) => first.state.settledRequests.includes(o))).toBe(true);
    expect(first.state.settledRequests.includes(first.offsets[43] as number)).toBe(false);
    // A branch from the older state: its window moves on from the older state's, not from the later one's.
    const branch = settle(first.state, 1).state.settledRequests;
    expect([branch.includes(first.offsets[44] as number), branch.includes(first.offsets[45] as number), branch.includes(later.offsets[0] as number)]).toEqual([false, true, false]);
  });

  it("keeps every state a value: a state reduced further, or reduced again from an older one, leaves the older one as it was", () => {
    const older = run([input("one"), input("two", "none")]);
    const newer = run([input("three", "none")], older);
    const branch = run([input("other", "none")], older);
    expect(older.messages.toArray().map((m) => m.content)).toEqual(["one", "two"]);
    expect(newer.messages.toArray().map((m) => m.content)).toEqual(["one", "two", "three"]);
    expect(branch.messages.toArray().map((m) => m.content)).toEqual(["one", "two", "other"]);
    expect(run([input("four", "none")], newer).messages.toArray().map((m) => m.content)).toEqual(["one", "two", "three", "four"]);
    expect(newer.messages.toArray(2).map((m) => m.content)).toEqual(["one", "two"]);
  });

  it("asks for a request on input, not while one runs, and not for trigger none", () => {
    expect(decide(run([input("note", "none")]))).toEqual({ kind: "none" });
    const asked = run([input("hi")]);
    expect(decide(asked)).toEqual({ kind: "start-request" });
    const start = started();
    const runningState = run([start], asked);
    expect(runningState.running).toMatchObject({ offset: start.offset, messageCount: 1 });
    expect(decide(run([input("more")], runningState))).toEqual({ kind: "none" });
  });

  it("queues input that arrives mid-request after the answer, and starts one more request for it", () => {
    const start = started();
    const state = run([input("first"), start, input("second"), succeeded(start.offset, "answer")]);
    expect(state.messages.toArray()).toEqual([
      { role: "user", content: "first" },
      { role: "assistant", content: "answer", toolCalls: [] },
      { role: "user", content: "second" },
    ]);
    expect(decide(state)).toEqual({ kind: "start-request" });
  });

  it("waits for every tool call, keeps results right after the call, and ignores a second settlement", () => {
    const start = started();
    const calls = [
      { callId: "c1", name: "a", arguments: "{}" },
      { callId: "c2", name: "b", arguments: "{}" },
    ];
    let state = run([input("go"), start, succeeded(start.offset, "", calls), ...calls.map((c) => at("agent/tool-call-requested", { requestOffset: start.offset, ...c }))]);
    expect(decide(state)).toEqual({ kind: "none" });
    state = run([at("agent/tool-call-settled", { callId: "c1", result: 1 }), input("meanwhile")], state);
    expect(decide(state)).toEqual({ kind: "none" });
    state = run([at("agent/tool-call-settled", { callId: "c2", error: "boom" }), at("agent/tool-call-settled", { callId: "c2", result: "late" })], state);
    expect(state.messages.toArray().map((m) => m.role)).toEqual(["user", "assistant", "tool", "tool", "user"]);
    expect(state.messages.toArray()[3]).toEqual({ role: "tool", toolCallId: "c2", content: "error: boom" });
    expect(decide(state)).toEqual({ kind: "start-request" });
  });

  it("cancels pending tool calls on an interrupt", () => {
    const start = started();
    const state = run([input("go"), start, succeeded(start.offset, "", [{ callId: "c1", name: "a", arguments: "{}" }]), at("agent/tool-call-requested", { requestOffset: start.offset, callId: "c1", name: "a", arguments: "{}" }), input("stop", "interrupt")]);
    expect(decide(state)).toEqual({ kind: "cancel-tool-calls", callIds: ["c1"] });
  });

  it("pauses after maxAutonomousTurns requests without outside input; outside input and resume reset the budget", () => {
    let state = run([at("agent/configured", { maxAutonomousTurns: 2 }), input("go")]);
    for (let turn = 0; turn < 2; turn++) {
      const start = started();
      state = run([start, succeeded(start.offset, "", [{ callId: `c${turn}`, name: "t", arguments: "{}" }]), at("agent/tool-call-requested", { requestOffset: start.offset, callId: `c${turn}`, name: "t", arguments: "{}" }), at("agent/tool-call-settled", { callId: `c${turn}`, result: null })], state);
    }
    expect(decide(state)).toMatchObject({ kind: "pause" });
    expect(decide(run([at("stream/resumed")], state))).toEqual({ kind: "start-request" });
    expect(decide(run([input("hi")], state))).toEqual({ kind: "start-request" });
  });

  it("keeps a cancelled request's partial text and remembers settled requests", () => {
    const start = started();
    const state = run([input("story"), start, input("stop", "interrupt"), at("agent/llm-request-settled", { requestOffset: start.offset, result: { status: "cancelled", reason: "interrupted", partialText: "Once" } })]);
    expect(state.messages.toArray()).toEqual([
      { role: "user", content: "story" },
      { role: "assistant", content: "Once", toolCalls: [] },
      { role: "user", content: "stop" },
    ]);
    expect(state.settledRequests.includes(start.offset)).toBe(true);
    expect(decide(state)).toEqual({ kind: "start-request" });
  });
});
