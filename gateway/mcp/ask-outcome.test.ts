import { describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { askProgress, foldAsk, type AskOutcome } from "./ask-outcome.js";

const at = (offset: number, type: string, payload: unknown): EventEnvelope => ({ streamPath: "/a", offset, type, payload, createdAt: "2026-01-01T00:00:00.000Z" });
const succeeded = (text: string, toolCalls: unknown[] = []) => ({ status: "succeeded", text, toolCalls, usage: null });

/** The outcome after the events, in order, for the input at `inputOffset`; null while it is still open. */
function outcomeOf(inputOffset: number, events: EventEnvelope[]): AskOutcome | null {
  let progress = askProgress(inputOffset);
  for (const event of events) {
    const next = foldAsk(progress, event);
    if (next.outcome !== null) return next.outcome;
    progress = next.progress;
  }
  return null;
}

describe("what became of an ask", () => {
  it("is the text of the first request after the input that settles without tool calls, through tool rounds", () => {
    expect(
      outcomeOf(10, [
        at(11, "agent/llm-request-started", { model: "m" }),
        at(12, "agent/llm-request-settled", { requestOffset: 11, result: succeeded("", [{ callId: "c", name: "t", arguments: "{}" }]) }),
        at(13, "agent/tool-call-requested", { requestOffset: 11, callId: "c", name: "t", arguments: "{}" }),
        at(14, "agent/tool-call-settled", { callId: "c", result: 1 }),
        at(15, "agent/llm-request-started", { model: "m" }),
        at(16, "agent/llm-request-settled", { requestOffset: 15, result: succeeded("done") }),
      ]),
    ).toEqual({ kind: "answered", text: "done", requestOffset: 15, settledOffset: 16 });
  });

  it("passes over a request that was running when the input arrived (it was not sent the input)", () => {
    const events = [at(12, "agent/llm-request-settled", { requestOffset: 9, result: succeeded("an older answer") })];
    expect(outcomeOf(10, events)).toBeNull();
    expect(outcomeOf(10, [...events, at(13, "agent/llm-request-started", { model: "m" }), at(14, "agent/llm-request-settled", { requestOffset: 13, result: succeeded("mine") })])).toMatchObject({ kind: "answered", text: "mine" });
  });

  it("fails on a failed or cancelled request, a pause, or a processor giving up on the input or its request", () => {
    expect(outcomeOf(10, [at(11, "agent/llm-request-started", { model: "m" }), at(12, "agent/llm-request-settled", { requestOffset: 11, result: { status: "failed", error: "boom" } })])).toMatchObject({ kind: "failed", reason: expect.stringContaining("boom") as unknown });
    expect(outcomeOf(10, [at(11, "agent/llm-request-settled", { requestOffset: 11, result: { status: "cancelled", reason: "interrupted", partialText: "" } })])).toMatchObject({ kind: "failed", reason: expect.stringContaining("cancelled") as unknown });
    expect(outcomeOf(10, [at(11, "agent/paused", { reason: "maxAutonomousTurns" })])).toMatchObject({ kind: "paused", offset: 11 });
    expect(outcomeOf(10, [at(11, "stream/paused", { reason: "breaker" })])).toMatchObject({ kind: "paused", reason: expect.stringContaining("breaker") as unknown });
    expect(outcomeOf(10, [at(11, "stream/error-occurred", { processor: "llm", message: "bad", offset: 10 })])).toMatchObject({ kind: "failed", offset: 11 });
    expect(outcomeOf(10, [at(11, "agent/llm-request-started", { model: "m" }), at(12, "stream/error-occurred", { processor: "llm", message: "bad", offset: 11 })])).toMatchObject({ kind: "failed" });
  });

  it("ignores what does not concern the input: other processors' errors, events at or before it", () => {
    expect(outcomeOf(10, [at(11, "stream/error-occurred", { processor: "traces", message: "x", offset: 3 }), at(9, "stream/paused", { reason: "old" }), at(12, "note", {})])).toBeNull();
  });
});
