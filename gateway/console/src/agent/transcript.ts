import { InputAddedSchema, RequestResultSchema, RequestSettledSchema, RequestStartedSchema, ResponseChunkSchema, ToolCallRequestedSchema, ToolCallSettledSchema, type RequestResult } from "../../../../shared/contract/events/agent.js";
import { AgentEventTypes, SystemEventTypes } from "../../../../shared/contract/wire.js";
import type { StoredEvent } from "../api/types.js";
import type { LogItem } from "../stream/use-stream-log.js";

/**
 * The conversation as a person reads it, from the log's events with their times: inputs, model requests (their
 * streamed text while they run, then the result, duration and usage) and tool calls (arguments, result,
 * duration). What the model was sent is the reducer's business (the Model requests tab asks the gateway).
 */
export type TranscriptEntry =
  | { kind: "input"; offset: number; role: string; content: string; createdAt: string }
  | { kind: "request"; offset: number; model: string; startedAt: string; streamed: string; result: RequestResult | null; settledAt: string | null }
  | { kind: "tool"; offset: number; callId: string; name: string; arguments: string; requestedAt: string; outcome: { result: unknown } | { error: string } | null; settledAt: string | null }
  | { kind: "pause"; offset: number; type: string; reason: string; createdAt: string };

export interface Transcript {
  entries: TranscriptEntry[];
  /** A request started and not settled: the agent is answering. */
  running: boolean;
  paused: boolean;
}

function reasonOf(event: StoredEvent): string {
  const payload = event.payload;
  return typeof payload === "object" && payload !== null && "reason" in payload && typeof payload.reason === "string" ? payload.reason : "";
}

export function transcriptOf(items: readonly LogItem[]): Transcript {
  const entries: TranscriptEntry[] = [];
  const requests = new Map<number, Extract<TranscriptEntry, { kind: "request" }>>();
  const tools = new Map<string, Extract<TranscriptEntry, { kind: "tool" }>>();
  let paused = false;
  for (const item of items) {
    const event = item.event;
    if (!item.stored) {
      const chunk = event.type === AgentEventTypes.responseChunk ? ResponseChunkSchema.safeParse(event.payload) : null;
      const request = chunk?.success === true ? requests.get(chunk.data.requestOffset) : undefined;
      if (request !== undefined && request.result === null && chunk?.success === true) request.streamed += chunk.data.text;
      continue;
    }
    const stored = item.event;
    switch (stored.type) {
      case AgentEventTypes.inputAdded: {
        const input = InputAddedSchema.safeParse(stored.payload);
        if (input.success) entries.push({ kind: "input", offset: stored.offset, role: input.data.role, content: input.data.content, createdAt: stored.createdAt });
        break;
      }
      case AgentEventTypes.requestStarted: {
        const started = RequestStartedSchema.safeParse(stored.payload);
        const entry = { kind: "request" as const, offset: stored.offset, model: started.data?.model ?? "", startedAt: stored.createdAt, streamed: "", result: null, settledAt: null };
        requests.set(stored.offset, entry);
        entries.push(entry);
        break;
      }
      case AgentEventTypes.requestSettled: {
        const settled = RequestSettledSchema.safeParse(stored.payload);
        const entry = settled.success ? requests.get(settled.data.requestOffset) : undefined;
        if (entry !== undefined && settled.success) {
          entry.result = RequestResultSchema.parse(settled.data.result);
          entry.settledAt = stored.createdAt;
        }
        break;
      }
      case AgentEventTypes.toolCallRequested: {
        const requested = ToolCallRequestedSchema.safeParse(stored.payload);
        if (!requested.success) break;
        const entry = { kind: "tool" as const, offset: stored.offset, callId: requested.data.callId, name: requested.data.name, arguments: requested.data.arguments, requestedAt: stored.createdAt, outcome: null, settledAt: null };
        tools.set(entry.callId, entry);
        entries.push(entry);
        break;
      }
      case AgentEventTypes.toolCallSettled: {
        const settled = ToolCallSettledSchema.safeParse(stored.payload);
        const entry = settled.success ? tools.get(settled.data.callId) : undefined;
        if (entry === undefined || entry.outcome !== null || !settled.success) break;
        entry.outcome = "error" in settled.data ? { error: settled.data.error } : { result: settled.data.result };
        entry.settledAt = stored.createdAt;
        break;
      }
      case SystemEventTypes.paused:
      case SystemEventTypes.agentPaused:
        paused = true;
        entries.push({ kind: "pause", offset: stored.offset, type: stored.type, reason: reasonOf(stored), createdAt: stored.createdAt });
        break;
      case SystemEventTypes.resumed:
        paused = false;
        break;
      default:
        break;
    }
  }
  const running = [...requests.values()].some((request) => request.result === null);
  return { entries, running, paused };
}
