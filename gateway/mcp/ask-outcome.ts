import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { AgentPausedSchema, RequestSettledSchema, RequestStartedSchema } from "../../shared/contract/events/agent.js";
import { ErrorOccurredSchema, StreamPausedSchema } from "../../shared/contract/events/stream.js";
import { AgentEventTypes, SystemEventTypes } from "../../shared/contract/wire.js";

/**
 * What became of one input an MCP client sent with `ask`, decided from the events stored after it, one at a time.
 * A pure fold, like the reducers in shared/state: the same events give the same answer.
 *
 * The answer is the first request started after the input that settles succeeded with no tool calls: a request
 * started after the input was sent the conversation with it (docs/EVENTS.md, "Agents"), while one already running
 * when it arrived was not, so its settlement is not the answer and is passed over. Tool rounds in between are
 * followed (a request with tool calls, the calls, the next request). A failed or cancelled request, a pause, or a
 * processor giving up on the input or on one of its requests ends the wait without an answer.
 */

export type AskOutcome =
  | { kind: "answered"; text: string; requestOffset: number; settledOffset: number }
  | { kind: "failed"; reason: string; offset: number }
  | { kind: "paused"; reason: string; offset: number };

export interface AskProgress {
  readonly inputOffset: number;
  /** Requests started after the input: the ones whose settlement or failure concerns it. */
  readonly requests: ReadonlySet<number>;
}

export function askProgress(inputOffset: number): AskProgress {
  return { inputOffset, requests: new Set() };
}

/** The progress after one more event, and the outcome if this event decides it. */
export function foldAsk(progress: AskProgress, event: EventEnvelope): { progress: AskProgress; outcome: AskOutcome | null } {
  const unchanged = { progress, outcome: null };
  if (event.offset <= progress.inputOffset) return unchanged;
  switch (event.type) {
    case AgentEventTypes.requestStarted: {
      if (!RequestStartedSchema.safeParse(event.payload).success) return unchanged;
      return { progress: { ...progress, requests: new Set([...progress.requests, event.offset]) }, outcome: null };
    }
    case AgentEventTypes.requestSettled: {
      const settled = RequestSettledSchema.safeParse(event.payload);
      if (!settled.success || settled.data.requestOffset <= progress.inputOffset) return unchanged;
      const result = settled.data.result;
      if (result.status === "succeeded") {
        // A round of tool calls: the loop goes on with the next request once they are settled.
        if (result.toolCalls.length > 0) return unchanged;
        return { progress, outcome: { kind: "answered", text: result.text, requestOffset: settled.data.requestOffset, settledOffset: event.offset } };
      }
      const reason = result.status === "failed" ? `The agent's model request failed: ${result.error}` : `The agent's model request was cancelled: ${result.reason}`;
      return { progress, outcome: { kind: "failed", reason, offset: event.offset } };
    }
    case SystemEventTypes.agentPaused:
    case SystemEventTypes.paused: {
      const paused = (event.type === SystemEventTypes.paused ? StreamPausedSchema : AgentPausedSchema).safeParse(event.payload);
      const reason = paused.success ? paused.data.reason : "no reason given";
      return { progress, outcome: { kind: "paused", reason: `The agent was paused (${event.type}: ${reason}); a person must resume it`, offset: event.offset } };
    }
    case SystemEventTypes.errorOccurred: {
      const error = ErrorOccurredSchema.safeParse(event.payload);
      if (!error.success) return unchanged;
      const concerned = error.data.offset === progress.inputOffset || progress.requests.has(error.data.offset);
      if (!concerned) return unchanged;
      return { progress, outcome: { kind: "failed", reason: `The processor ${error.data.processor} gave up on offset ${error.data.offset}: ${error.data.message}`, offset: event.offset } };
    }
    default:
      return unchanged;
  }
}
