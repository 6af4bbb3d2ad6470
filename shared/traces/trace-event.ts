import type { EventEnvelope } from "../contract/envelope.js";
import { InputAddedSchema, RequestSettledSchema, RequestStartedSchema, ToolCallRequestedSchema, ToolCallSettledSchema, ToolCallTimedOutSchema } from "../contract/events/agent.js";
import { AgentEventTypes, MetadataKeys, SystemEventTypes } from "../contract/wire.js";

/** What a span needs to know of an event of the agent loop; never its text, so a turn's record stays small. */
export type TraceDetail =
  | { kind: "input"; trigger: "auto" | "none" | "interrupt" }
  | { kind: "request-started"; model: string }
  | { kind: "request-settled"; requestOffset: number; status: "succeeded" | "failed" | "cancelled"; error?: string; usage: { promptTokens: number; completionTokens: number } | null; toolCalls: number }
  | { kind: "tool-requested"; callId: string; name: string }
  | { kind: "tool-settled"; callId: string; error?: string }
  | { kind: "tool-timed-out"; callId: string }
  | { kind: "paused" }
  | { kind: "forked" }
  | { kind: "other" };

/** One event as the traces see it. */
export interface TraceEvent {
  offset: number;
  type: string;
  /** `createdAt` in Unix milliseconds: spans start and end at the events' own times, never at the exporter's. */
  createdAtMs: number;
  source?: { processor: string; causationOffset: number };
  /** The `traceparent` its writer put in its metadata, if any (linked when it differs from the log's). */
  traceparent?: string;
  /** Set on an event a fork inherited: where it was copied from. Its turns are its source's, not the fork's. */
  forkedFrom?: { path: string; offset: number };
  detail: TraceDetail;
}

/** Error texts kept on a span: enough to read, not a payload's worth. */
const MAX_ERROR_CHARS = 512;

function clip(text: string): string {
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}…` : text;
}

function detailOf(event: EventEnvelope): TraceDetail {
  switch (event.type) {
    case AgentEventTypes.inputAdded: {
      const input = InputAddedSchema.safeParse(event.payload);
      return input.success ? { kind: "input", trigger: input.data.trigger } : { kind: "other" };
    }
    case AgentEventTypes.requestStarted: {
      const started = RequestStartedSchema.safeParse(event.payload);
      return started.success ? { kind: "request-started", model: started.data.model } : { kind: "other" };
    }
    case AgentEventTypes.requestSettled: {
      const settled = RequestSettledSchema.safeParse(event.payload);
      if (!settled.success) return { kind: "other" };
      const { requestOffset, result } = settled.data;
      if (result.status === "succeeded") return { kind: "request-settled", requestOffset, status: "succeeded", usage: result.usage, toolCalls: result.toolCalls.length };
      if (result.status === "failed") return { kind: "request-settled", requestOffset, status: "failed", error: clip(result.error), usage: null, toolCalls: 0 };
      return { kind: "request-settled", requestOffset, status: "cancelled", error: clip(result.reason), usage: null, toolCalls: 0 };
    }
    case AgentEventTypes.toolCallRequested: {
      const requested = ToolCallRequestedSchema.safeParse(event.payload);
      return requested.success ? { kind: "tool-requested", callId: requested.data.callId, name: requested.data.name } : { kind: "other" };
    }
    case AgentEventTypes.toolCallSettled: {
      const settled = ToolCallSettledSchema.safeParse(event.payload);
      if (!settled.success) return { kind: "other" };
      return "error" in settled.data ? { kind: "tool-settled", callId: settled.data.callId, error: clip(settled.data.error) } : { kind: "tool-settled", callId: settled.data.callId };
    }
    case AgentEventTypes.toolCallTimedOut: {
      const timedOut = ToolCallTimedOutSchema.safeParse(event.payload);
      return timedOut.success ? { kind: "tool-timed-out", callId: timedOut.data.callId } : { kind: "other" };
    }
    case AgentEventTypes.paused:
      return { kind: "paused" };
    case SystemEventTypes.forked:
      return { kind: "forked" };
    default:
      return { kind: "other" };
  }
}

export function traceEventOf(event: EventEnvelope): TraceEvent {
  const traceparent = event.metadata?.[MetadataKeys.traceparent];
  const createdAtMs = Date.parse(event.createdAt);
  return {
    offset: event.offset,
    type: event.type,
    createdAtMs: Number.isNaN(createdAtMs) ? 0 : createdAtMs,
    ...(event.source === undefined ? {} : { source: { processor: event.source.processor, causationOffset: event.source.causationOffset } }),
    ...(typeof traceparent === "string" ? { traceparent } : {}),
    ...(event.forkedFrom === undefined ? {} : { forkedFrom: { path: event.forkedFrom.path, offset: event.forkedFrom.offset } }),
    detail: detailOf(event),
  };
}
