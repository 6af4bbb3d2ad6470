import type { EventEnvelope } from "../contract/envelope.js";
import { AgentEventTypes, SystemEventTypes } from "../contract/wire.js";
import { AgentConfiguredSchema, InputAddedSchema, RequestSettledSchema, RequestStartedSchema, ToolCallRequestedSchema, ToolCallSettledSchema, type AgentConfig, type Tool } from "../contract/events/agent.js";
import { MessageHistory, type ChatMessage } from "./message-history.js";
import { RecentOffsets } from "./recent-offsets.js";

/**
 * The conversation, rebuilt from the stream by a pure reducer. It holds what
 * the model must be sent (messages in order) and what the loop must decide
 * next; no event carries the history, so storage stays linear.
 */

export interface PendingToolCall {
  name: string;
  requestOffset: number;
}

export interface ConversationState {
  config: AgentConfig;
  messages: MessageHistory;
  /** The request started and not yet settled, with how many messages it was asked about. */
  running: { offset: number; model: string; messageCount: number } | null;
  /** Requests that have settled: a redelivered start must not run again. */
  settledRequests: RecentOffsets;
  pendingToolCalls: Record<string, PendingToolCall>;
  /** Outside input (or finished tool calls) asks for a model request once nothing is running. */
  wantsRequest: boolean;
  /** Model requests since the last outside input. */
  autonomousTurns: number;
  /** The offset of an interrupting input not yet acted on, if any. */
  interruptAt: number | null;
  /**
   * Inputs that arrived while a request or its tool calls were open. They join
   * `messages` once those close, so the model always sees an answer right after
   * what it answered, and tool results right after the call (as the API requires).
   */
  deferred: MessageHistory;
  /**
   * In a fork, the offset of its own stream/forked: a request started before it (in the inherited history) has no
   * one running it, and is taken over (processors/llm, docs/ARCHITECTURE.md "Forks").
   */
  forkedAt: number | null;
}

const SETTLED_MEMORY = 256;

export function initialConversation(): ConversationState {
  return {
    config: AgentConfiguredSchema.parse({}),
    messages: MessageHistory.empty(),
    running: null,
    settledRequests: RecentOffsets.empty(SETTLED_MEMORY),
    pendingToolCalls: {},
    wantsRequest: false,
    autonomousTurns: 0,
    interruptAt: null,
    deferred: MessageHistory.empty(),
    forkedAt: null,
  };
}

export function reduceConversation(state: ConversationState, event: EventEnvelope): ConversationState {
  switch (event.type) {
    case AgentEventTypes.configured: {
      const config = AgentConfiguredSchema.safeParse(event.payload);
      return config.success ? { ...state, config: config.data } : state;
    }
    case AgentEventTypes.inputAdded: {
      const input = InputAddedSchema.safeParse(event.payload);
      if (!input.success) return state;
      const { role, content, trigger } = input.data;
      const open = state.running !== null || Object.keys(state.pendingToolCalls).length > 0;
      const next = open ? { ...state, deferred: state.deferred.append({ role, content }) } : { ...state, messages: state.messages.append({ role, content }) };
      if (trigger === "none") return next;
      return { ...next, wantsRequest: true, autonomousTurns: 0, interruptAt: trigger === "interrupt" ? event.offset : state.interruptAt };
    }
    case AgentEventTypes.requestStarted: {
      const started = RequestStartedSchema.safeParse(event.payload);
      if (!started.success) return state;
      return {
        ...state,
        running: { offset: event.offset, model: started.data.model, messageCount: state.messages.length },
        wantsRequest: false,
        interruptAt: null,
        autonomousTurns: state.autonomousTurns + 1,
      };
    }
    case AgentEventTypes.requestSettled: {
      const settled = RequestSettledSchema.safeParse(event.payload);
      if (!settled.success) return state;
      const { requestOffset, result } = settled.data;
      if (state.settledRequests.includes(requestOffset)) return state;
      const settledRequests = state.settledRequests.add(requestOffset);
      const running = state.running?.offset === requestOffset ? null : state.running;
      let messages = state.messages;
      if (result.status === "succeeded") messages = messages.append({ role: "assistant", content: result.text, toolCalls: result.toolCalls });
      if (result.status === "cancelled" && result.partialText !== "") messages = messages.append({ role: "assistant", content: result.partialText, toolCalls: [] });
      return flushDeferred({ ...state, messages, running, settledRequests });
    }
    case AgentEventTypes.toolCallRequested: {
      const requested = ToolCallRequestedSchema.safeParse(event.payload);
      if (!requested.success) return state;
      return { ...state, pendingToolCalls: { ...state.pendingToolCalls, [requested.data.callId]: { name: requested.data.name, requestOffset: requested.data.requestOffset } } };
    }
    case AgentEventTypes.toolCallSettled: {
      const settled = ToolCallSettledSchema.safeParse(event.payload);
      // The first settlement wins (a tool's late answer after a timeout is ignored): one result per call keeps the history valid.
      if (!settled.success || !(settled.data.callId in state.pendingToolCalls)) return state;
      const settledId = settled.data.callId;
      const pendingToolCalls = Object.fromEntries(Object.entries(state.pendingToolCalls).filter(([callId]) => callId !== settledId));
      const content = "error" in settled.data ? `error: ${settled.data.error}` : JSON.stringify(settled.data.result ?? null);
      const messages = state.messages.append({ role: "tool", toolCallId: settled.data.callId, content });
      const allSettled = Object.keys(pendingToolCalls).length === 0;
      return flushDeferred({ ...state, messages, pendingToolCalls, wantsRequest: state.wantsRequest || allSettled });
    }
    // Pausing itself is the runtime's business (agent/paused pauses the stream); resuming starts a fresh turn budget.
    case SystemEventTypes.resumed:
      return { ...state, autonomousTurns: 0 };
    // The first of the stream's own: a fork of a fork inherits its source's, which is history there.
    case SystemEventTypes.forked:
      return event.forkedFrom === undefined && state.forkedAt === null ? { ...state, forkedAt: event.offset } : state;
    default:
      return state;
  }
}

function flushDeferred(state: ConversationState): ConversationState {
  if (state.deferred.length === 0 || state.running !== null || Object.keys(state.pendingToolCalls).length > 0) return state;
  return { ...state, messages: state.messages.appendAll(state.deferred.toArray()), deferred: MessageHistory.empty() };
}

/** What a model is sent for a request: the processor's executor sends exactly this, and the console shows it. */
export interface ModelRequest {
  model: string;
  systemPrompt: string | undefined;
  messages: readonly ChatMessage[];
  tools: readonly Tool[];
}

/** The request the running model request was started with, as the conversation stood when it started; null when none runs. */
export function runningRequest(state: ConversationState): ModelRequest | null {
  const running = state.running;
  if (running === null) return null;
  return { model: running.model, systemPrompt: state.config.systemPrompt, messages: state.messages.toArray(running.messageCount), tools: state.config.tools ?? [] };
}
