import type { EventEnvelope } from "../contract/envelope.js";
import { AgentEventTypes, SystemEventTypes } from "../contract/wire.js";
import { AgentConfiguredSchema, BudgetConfiguredSchema, ContextCompactedSchema, InputAddedSchema, RequestSettledSchema, RequestStartedSchema, ToolCallRequestedSchema, ToolCallSettledSchema, type AgentConfig, type Tool } from "../contract/events/agent.js";
import { MessageHistory, type ChatMessage } from "./message-history.js";
import { RecentOffsets } from "./recent-offsets.js";
import { sentMessages, type Compaction } from "./compaction.js";
import { addUsage, noUsage, type Budget, type UsageTotals } from "./usage.js";
import { initialMcpTools, offeredMcpTools, reduceMcpTools, type McpToolsState } from "./mcp-tools.js";

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
  /**
   * The request started and not yet settled, with how many messages it was asked about, and the compaction in
   * effect when it started: it was sent `summary` and the messages from `compactedCount` to `messageCount`.
   */
  running: { offset: number; model: string; messageCount: number; compactedCount: number; summary: string; systemPrompt: string | undefined; tools: readonly Tool[] } | null;
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
  /** The agent's MCP servers and their tools, offered beside `config.tools`. */
  mcp: McpToolsState;
  /** The latest agent/context-compacted: what later requests are sent in place of the oldest messages. */
  compaction: Compaction | null;
  /**
   * The usage the model last reported, and what it covers: a request sent the messages from `compactedCount` and
   * answered with the message before `messageCount`. The next request's size is counted from it
   * (processors/llm/token-count.ts) while the compaction is the same.
   */
  lastUsage: { tokens: number; messageCount: number; compactedCount: number } | null;
  /** Everything the agent's model requests used, summed from the log (shared/state/usage.ts). */
  usage: UsageTotals;
  /** The latest agent/budget-configured; null when none was. */
  budget: Budget | null;
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
    mcp: initialMcpTools(),
    compaction: null,
    lastUsage: null,
    usage: noUsage,
    budget: null,
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
      const next = open ? { ...state, deferred: state.deferred.append({ role, content }, event.offset) } : { ...state, messages: state.messages.append({ role, content }, event.offset) };
      if (trigger === "none") return next;
      return { ...next, wantsRequest: true, autonomousTurns: 0, interruptAt: trigger === "interrupt" ? event.offset : state.interruptAt };
    }
    case AgentEventTypes.requestStarted: {
      const started = RequestStartedSchema.safeParse(event.payload);
      if (!started.success) return state;
      return {
        ...state,
        // What it is sent is fixed here: tools listed (or a prompt configured) while it runs are for the next request.
        running: { offset: event.offset, model: started.data.model, messageCount: state.messages.length, compactedCount: state.compaction?.messageCount ?? 0, summary: state.compaction?.summary ?? "", systemPrompt: state.config.systemPrompt, tools: offeredTools(state) },
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
      if (result.status === "succeeded") messages = messages.append({ role: "assistant", content: result.text, toolCalls: result.toolCalls }, event.offset);
      if (result.status === "cancelled" && result.partialText !== "") messages = messages.append({ role: "assistant", content: result.partialText, toolCalls: [] }, event.offset);
      if (result.status !== "succeeded") return flushDeferred({ ...state, messages, running, settledRequests }, event.offset);
      const usage = addUsage(state.usage, result.usage);
      // What the model reported covers the messages it was sent and its answer, as long as the compaction stays.
      const asked = state.running?.offset === requestOffset ? state.running : null;
      const lastUsage = result.usage !== null && asked !== null ? { tokens: result.usage.promptTokens + result.usage.completionTokens, messageCount: asked.messageCount + 1, compactedCount: asked.compactedCount } : state.lastUsage;
      return flushDeferred({ ...state, messages, running, settledRequests, usage, lastUsage }, event.offset);
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
      const messages = state.messages.append({ role: "tool", toolCallId: settled.data.callId, content }, event.offset);
      const allSettled = Object.keys(pendingToolCalls).length === 0;
      return flushDeferred({ ...state, messages, pendingToolCalls, wantsRequest: state.wantsRequest || allSettled }, event.offset);
    }
    // Pausing itself is the runtime's business (agent/paused pauses the stream); resuming starts a fresh turn budget.
    case SystemEventTypes.resumed:
      return { ...state, autonomousTurns: 0 };
    // The first of the stream's own: a fork of a fork inherits its source's, which is history there.
    case SystemEventTypes.forked:
      return event.forkedFrom === undefined && state.forkedAt === null ? { ...state, forkedAt: event.offset } : state;
    case AgentEventTypes.contextCompacted: {
      const compacted = ContextCompactedSchema.safeParse(event.payload);
      if (!compacted.success) return state;
      const { summary, throughOffset, method, usage } = compacted.data;
      return { ...state, compaction: { offset: event.offset, throughOffset, messageCount: state.messages.countThrough(throughOffset), summary, method }, usage: addUsage(state.usage, usage) };
    }
    case AgentEventTypes.budgetConfigured: {
      const budget = BudgetConfiguredSchema.safeParse(event.payload);
      return budget.success ? { ...state, budget: budget.data } : state;
    }
    case AgentEventTypes.mcpServersConfigured:
    case AgentEventTypes.toolsDiscovered:
      return { ...state, mcp: reduceMcpTools(state.mcp, event) };
    default:
      return state;
  }
}

/** `offset`: the event that closed what the inputs waited for; they join the messages there. */
function flushDeferred(state: ConversationState, offset: number): ConversationState {
  if (state.deferred.length === 0 || state.running !== null || Object.keys(state.pendingToolCalls).length > 0) return state;
  return { ...state, messages: state.messages.appendAll(state.deferred.toArray(), offset), deferred: MessageHistory.empty() };
}

/** What a model is sent for a request: the processor's executor sends exactly this, and the console shows it. */
export interface ModelRequest {
  model: string;
  systemPrompt: string | undefined;
  messages: readonly ChatMessage[];
  tools: readonly Tool[];
}

/**
 * The request the running model request was started with, as the conversation stood when it started: the system
 * prompt, the compaction's summary in place of the messages it replaced, then the rest; null when none runs.
 */
export function runningRequest(state: ConversationState): ModelRequest | null {
  const running = state.running;
  if (running === null) return null;
  return { model: running.model, systemPrompt: running.systemPrompt, messages: sentMessages(state.messages, running.compactedCount, running.messageCount, running.summary), tools: running.tools };
}

/** The request a model request started now would be sent (what the LLM processor counts before it starts one). */
export function nextRequest(state: ConversationState, model: string): ModelRequest {
  const compaction = state.compaction;
  return { model, systemPrompt: state.config.systemPrompt, messages: sentMessages(state.messages, compaction?.messageCount ?? 0, state.messages.length, compaction?.summary ?? ""), tools: offeredTools(state) };
}

/**
 * Every tool the model is offered: those of agent/configured, then those the agent's MCP servers listed (one whose
 * name a configured tool already has is left out: a model API refuses two tools of one name).
 */
export function offeredTools(state: ConversationState): Tool[] {
  const configured = state.config.tools ?? [];
  const taken = new Set(configured.map((tool) => tool.name));
  return [...configured, ...offeredMcpTools(state.mcp).filter((tool) => !taken.has(tool.name))];
}
