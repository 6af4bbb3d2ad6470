import { describe, expect, it } from "vitest";
import type { EventEnvelope } from "../contract/envelope.js";
import { spansOfTurn } from "./turn-spans.js";
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
