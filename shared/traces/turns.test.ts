import { describe, expect, it } from "vitest";
import type { EventEnvelope } from "../contract/envelope.js";
import { spansOfTurn } from "./turn-spans.js";
import { spanIdOf, traceIdOf } from "./trace-ids.js";
import { TURN_TIMEOUT_MS, turnsOf } from "./turns.js";

const start = Date.parse("2026-01-01T00:00:00.000Z");

/** A stream's history, written as the llm and a tool owner would write it. */
function history(path: string) {
  const events: EventEnvelope[] = [];
  const add = (type: string, payload: unknown, atMs: number, source?: { processor: string; causationOffset: number }): number => {
    const offset = events.length * 3 + 1;
    events.push({ streamPath: path, offset, type, payload, createdAt: new Date(start + atMs).toISOString(), ...(source === undefined ? {} : { source }) });
    return offset;
  };
  return { events, add };
}

const by = (processor: string, causationOffset: number) => ({ processor, causationOffset });

/** input → request (tool call) → tool → request → answer; the llm writes a settlement and its calls in one batch. */
function toolTurn(path: string) {
  const { events, add } = history(path);
  const input = add("agent/input-added", { role: "user", content: "hi" }, 0);
  const started = add("agent/llm-request-started", { model: "m" }, 10, by("llm", input));
  add("agent/llm-request-settled", { requestOffset: started, result: { status: "succeeded", text: "", toolCalls: [{ callId: "c1", name: "t", arguments: "{}" }], usage: { promptTokens: 5, completionTokens: 2 } } }, 100, by("llm", started));
  const requested = add("agent/tool-call-requested", { requestOffset: started, callId: "c1", name: "t", arguments: "{}" }, 100, by("llm", started));
  const settled = add("agent/tool-call-settled", { callId: "c1", result: 1 }, 150, by("tools", requested));
  const started2 = add("agent/llm-request-started", { model: "m" }, 160, by("llm", settled));
  add("agent/llm-request-settled", { requestOffset: started2, result: { status: "succeeded", text: "ok", toolCalls: [], usage: null } }, 200, by("llm", started2));
  return { events, add, input };
}

describe("turns folded from a stream", () => {
  it("keep a turn open between a settlement and the tool calls stored after it, and close it at the answer", () => {
    const { events } = toolTurn("/a");
    const turns = turnsOf(events);
    expect(turns).toHaveLength(1);
    expect(turns[0]).toMatchObject({ rootOffset: 1, outcome: "answered", closedAtOffset: events.at(-1)?.offset });
    expect(turns[0]?.events).toHaveLength(events.length);
  });

  it("give the same spans on every export, and a stream at another path (a fork) its own ids with the same shape", () => {
    const [a] = turnsOf(toolTurn("/a").events);
    const [again] = turnsOf(toolTurn("/a").events);
    const [fork] = turnsOf(toolTurn("/a-fork").events);
    if (a === undefined || again === undefined || fork === undefined) throw new Error("no turn");
    expect(spansOfTurn(again)).toEqual(spansOfTurn(a));
    const spans = spansOfTurn(a);
    const forked = spansOfTurn(fork);
    // Spans that start together are ordered by id, so the shape is compared as a set of names.
    expect(forked.map((s) => s.name.replace("/a-fork", "/a")).sort()).toEqual(spans.map((s) => s.name).sort());
    const ids = new Set(spans.flatMap((s) => [s.traceId, s.spanId]));
    for (const span of forked) expect(ids.has(span.traceId) || ids.has(span.spanId)).toBe(false);
    expect(spans.map((s) => s.name).sort()).toEqual(["chat m", "chat m", "execute_tool t", "invoke_agent /a", "react llm", "react llm", "react llm", "react llm", "react tools"]);
  });

  it("take an input that arrives while the loop runs into the same turn, which ends with the answer to it", () => {
    const { events, add } = history("/b");
    const first = add("agent/input-added", { role: "user", content: "one" }, 0);
    const s1 = add("agent/llm-request-started", { model: "m" }, 5, by("llm", first));
    add("agent/input-added", { role: "user", content: "two" }, 6);
    const settled1 = add("agent/llm-request-settled", { requestOffset: s1, result: { status: "succeeded", text: "a", toolCalls: [], usage: null } }, 50, by("llm", s1));
    const s2 = add("agent/llm-request-started", { model: "m" }, 55, by("llm", settled1));
    add("agent/llm-request-settled", { requestOffset: s2, result: { status: "failed", error: "boom" } }, 90, by("llm", s2));
    const turns = turnsOf(events);
    expect(turns.map((t) => [t.rootOffset, t.outcome, t.events.length])).toEqual([[first, "failed", 6]]);
    const chat = spansOfTurn(turns[0] as (typeof turns)[number]).filter((s) => s.name === "chat m");
    expect(chat.map((s) => s.status)).toEqual([{ code: "unset" }, { code: "error", message: "boom" }]);
  });

  it("close a turn that outlives the timeout at the stream's next event, and one the llm paused at its turn limit", () => {
    const { events, add } = history("/c");
    add("agent/input-added", { role: "user", content: "nobody answers" }, 0);
    const late = add("agent/input-added", { role: "user", content: "later" }, TURN_TIMEOUT_MS + 1);
    add("agent/paused", { reason: "turn limit" }, TURN_TIMEOUT_MS + 2, by("llm", late));
    const resumed = add("stream/resumed", {}, TURN_TIMEOUT_MS + 3);
    add("agent/llm-request-started", { model: "m" }, TURN_TIMEOUT_MS + 4, by("llm", resumed));
    const turns = turnsOf(events);
    expect(turns.map((t) => [t.rootOffset, t.outcome])).toEqual([[1, "timed-out"], [late, "paused"], [resumed, "open"]]);
    const timedOut = spansOfTurn(turns[0] as (typeof turns)[number]);
    expect(timedOut[0]).toMatchObject({ attributes: { "agentmesh.turn.outcome": "timed-out", "error.type": "timed-out" }, status: { code: "error" } });
  });

  it("start no turn for an input that asks for no answer, nor for events outside the agent loop", () => {
    const { events, add } = history("/d");
    add("agent/input-added", { role: "user", content: "context", trigger: "none" }, 0);
    add("schedule/added", { slug: "x" }, 1);
    expect(turnsOf(events)).toEqual([]);
  });
});

/** What the gateway's fork route stores: the events up to `at`, renumbered, each naming its original, offsets translated. */
function forkOf(events: readonly EventEnvelope[], at: number, path: string): EventEnvelope[] {
  const offsets = new Map<number, number>();
  const copies: EventEnvelope[] = [];
  for (const event of events.filter((e) => e.offset <= at)) {
    const offset = copies.length + 1;
    offsets.set(event.offset, offset);
    const payload = event.payload as Record<string, unknown>;
    const translated = typeof payload.requestOffset === "number" ? { ...payload, requestOffset: offsets.get(payload.requestOffset) } : payload;
    copies.push({ ...event, streamPath: path, offset, payload: translated, forkedFrom: { path: event.streamPath, offset: event.offset }, ...(event.source === undefined ? {} : { source: { ...event.source, causationOffset: offsets.get(event.source.causationOffset) ?? 0 } }) });
  }
  return copies;
}

describe("turns of a fork", () => {
  /** A finished turn, then a second whose request asked for a tool, forked while that call is open. */
  function forkedWithOpenCall() {
    const source = toolTurn("/src");
    const second = source.add("agent/input-added", { role: "user", content: "again" }, 1_000);
    const started = source.add("agent/llm-request-started", { model: "m" }, 1_010, by("llm", second));
    source.add("agent/llm-request-settled", { requestOffset: started, result: { status: "succeeded", text: "", toolCalls: [{ callId: "c2", name: "slow", arguments: "{}" }], usage: null } }, 1_100, by("llm", started));
    const requested = source.add("agent/tool-call-requested", { requestOffset: started, callId: "c2", name: "slow", arguments: "{}" }, 1_100, by("llm", started));
    const events = forkOf(source.events, requested, "/fork");
    const at = (type: string, payload: unknown, ms: number, src?: { processor: string; causationOffset: number }): number => {
      const offset = events.length + 1;
      events.push({ streamPath: "/fork", offset, type, payload, createdAt: new Date(start + ms).toISOString(), ...(src === undefined ? {} : { source: src }) });
      return offset;
    };
    const forkedAt = at("stream/forked", { from: "/src", at: requested, events: events.length, subscriptions: false }, 5_000);
    // The call is open in the fork: settled there over HTTP (no source), then the loop goes on.
    const settled = at("agent/tool-call-settled", { callId: "c2", result: 42 }, 6_000);
    const restarted = at("agent/llm-request-started", { model: "m" }, 6_010, by("llm", settled));
    at("agent/llm-request-settled", { requestOffset: restarted, result: { status: "succeeded", text: "ok", toolCalls: [], usage: null } }, 6_100, by("llm", restarted));
    return { source, events, forkedAt, second };
  }

  it("leave inherited turns to the source, and root the fork's own turn at stream/forked, carrying the open call", () => {
    const { events, forkedAt, second } = forkedWithOpenCall();
    const turns = turnsOf(events);
    expect(turns.map((t) => [t.rootOffset, t.outcome])).toEqual([[forkedAt, "answered"]]);
    const spans = spansOfTurn(turns[0] as (typeof turns)[number]);
    // One trace, the fork's, rooted where the runtime roots the reactions to stream/forked; every parent is in it.
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([traceIdOf("/fork", forkedAt)]));
    const ids = new Set(spans.map((s) => s.spanId));
    for (const span of spans) if (span.parentSpanId !== undefined) expect(ids.has(span.parentSpanId), span.name).toBe(true);
    expect(spans.map((s) => s.name).sort()).toEqual(["chat m", "execute_tool slow", "invoke_agent /fork", "react llm", "react llm"]);
    // The carried call runs in the fork from the fork on; the root links to the source's turn it goes on from.
    const tool = spans.find((s) => s.name === "execute_tool slow");
    expect(tool).toMatchObject({ startMs: start + 5_000, endMs: start + 6_000, parentSpanId: spans[0]?.spanId });
    expect(spans[0]?.links).toEqual([expect.objectContaining({ traceId: traceIdOf("/src", second), spanId: spanIdOf("/src", "turn", second) })]);
  });

  it("have no turn of their own when the fork holds only copies, or a fork of a fork re-roots at its own stream/forked", () => {
    const { events, forkedAt } = forkedWithOpenCall();
    expect(turnsOf(events.slice(0, forkedAt - 1))).toEqual([]);
    // Fork the fork after its stream/forked, while the call is still open: the turn is the second fork's own.
    const again = forkOf(events, forkedAt, "/fork2");
    again.push({ streamPath: "/fork2", offset: again.length + 1, type: "stream/forked", payload: {}, createdAt: new Date(start + 9_000).toISOString() });
    const [turn] = turnsOf(again);
    expect(turn).toMatchObject({ rootOffset: again.length, outcome: "open", continues: { path: "/fork", rootOffset: forkedAt } });
  });
});

describe("a paused fork", () => {
  it("ends the turn open since stream/forked at the resume, where the llm takes the inherited request over", () => {
    const { events, add } = history("/e");
    const input = add("agent/input-added", { role: "user", content: "go" }, 0);
    const started = add("agent/llm-request-started", { model: "m" }, 1, by("llm", input));
    for (const event of events) event.forkedFrom = { path: "/src", offset: event.offset };
    const forked = add("stream/forked", {}, 2);
    const resumed = add("stream/resumed", {}, 3);
    add("agent/llm-request-settled", { requestOffset: started, result: { status: "cancelled", reason: "taken over", partialText: "" } }, 4, by("llm", resumed));
    const again = add("agent/llm-request-started", { model: "m" }, 4, by("llm", resumed));
    add("agent/llm-request-settled", { requestOffset: again, result: { status: "succeeded", text: "ok", toolCalls: [], usage: null } }, 5, by("llm", again));
    expect(turnsOf(events).map((t) => [t.rootOffset, t.outcome, t.closedAtOffset])).toEqual([[forked, "paused", resumed], [resumed, "answered", events.at(-1)?.offset]]);
  });
});
