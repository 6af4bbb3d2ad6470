import { describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { TURN_TIMEOUT_MS } from "../../shared/traces/turns.js";
import { dueTurns, initialTracesState, reduceTracesState, type TracesState } from "./processor.js";

const start = Date.parse("2026-01-01T00:00:00.000Z");

function stream() {
  const events: EventEnvelope[] = [];
  const add = (type: string, payload: unknown, atMs: number, source?: { processor: string; causationOffset: number }): EventEnvelope => {
    const event: EventEnvelope = { streamPath: "/p", offset: events.length + 1, type, payload, createdAt: new Date(start + atMs).toISOString(), ...(source === undefined ? {} : { source }) };
    events.push(event);
    return event;
  };
  const stateAt = (offset: number): TracesState => events.filter((e) => e.offset <= offset).reduce(reduceTracesState, initialTracesState());
  return { events, add, stateAt };
}

/**
 * Which event sends a turn is a function of the stream: any replica, with any state at or a little past the event,
 * sends the same turns at it, and no turn is due at two events (except again on a resume, at least once).
 */
describe("when the traces processor sends a turn", () => {
  it("sends a turn closed at an event it does not handle (a timeout noticed at a schedule) at the stream's next event it handles", () => {
    const { add, stateAt, events } = stream();
    const input = add("agent/input-added", { role: "user", content: "nobody answers" }, 0);
    const other = add("schedule/added", { slug: "x" }, TURN_TIMEOUT_MS + 1);
    const next = add("agent/input-added", { role: "user", content: "context", trigger: "none" }, TURN_TIMEOUT_MS + 2);
    add("bench", {}, TURN_TIMEOUT_MS + 3);
    // What a replica that never saw the earlier events decides, on a state at the event or past it.
    for (const offset of [next.offset, events.length]) {
      expect(dueTurns(stateAt(offset), next).map((t) => [t.rootOffset, t.outcome, t.closedAtOffset])).toEqual([[input.offset, "timed-out", other.offset]]);
      expect(dueTurns(stateAt(offset), input)).toEqual([]);
    }
  });

  it("sends a turn the llm paused again on the resume (the runtime does not react on a paused stream)", () => {
    const { add, stateAt } = stream();
    const input = add("agent/input-added", { role: "user", content: "go" }, 0);
    const started = add("agent/llm-request-started", { model: "m" }, 1, { processor: "llm", causationOffset: input.offset });
    add("agent/llm-request-settled", { requestOffset: started.offset, result: { status: "succeeded", text: "", toolCalls: [], usage: null } }, 2, { processor: "llm", causationOffset: started.offset });
    const second = add("agent/input-added", { role: "user", content: "more" }, 3);
    const paused = add("agent/paused", { reason: "turn limit" }, 4, { processor: "llm", causationOffset: second.offset });
    const resumed = add("stream/resumed", {}, 5);
    const state = stateAt(resumed.offset);
    expect(dueTurns(state, paused).map((t) => t.outcome)).toEqual(["paused"]);
    // The resume sends what was due since the stream began (no earlier resume): the answered turn again, and the paused one.
    expect(dueTurns(state, resumed).map((t) => [t.rootOffset, t.outcome])).toEqual([[input.offset, "answered"], [second.offset, "paused"]]);
  });
});
