import { createHash } from "node:crypto";
import type { EventEnvelope, EventInput } from "../../shared/contract/envelope.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { Processor, ReactionContext } from "../runtime/runtime.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { initialConversation, reduceConversation, type ConversationState } from "../../shared/state/conversation.js";
import { BUDGET_PAUSE_REASON, decide } from "./decision.js";
import { ToolCallTimedOutSchema } from "../../shared/contract/events/agent.js";
import { AgentEventTypes, ScheduleEventTypes, SystemEventTypes, ProcessorNames } from "../../shared/contract/wire.js";
import { executeRequest } from "./executor.js";
import type { ModelClient } from "./model-client.js";
import { compactedEvent, type Compactor } from "./compaction.js";
import type { Prices } from "./pricing.js";
import { addUsage, budgetReached } from "../../shared/state/usage.js";
import type { Logger } from "../../shared/service/logger.js";

export const LLM_NAME = ProcessorNames.llm;

export interface LlmDeps {
  nats: Nats;
  client: ModelClient;
  defaultModel: string;
  /** Compacts the context before a request that would not fit (compaction.ts). */
  compactor: Compactor;
  /** What each model costs: a settled request's usage carries its price. */
  prices: Prices;
}

/** A schedule slug for a tool call's timeout: call ids are the model's, so unsafe ones are hashed. */
function timeoutSlug(callId: string): string {
  const slug = `tool-timeout-${callId}`;
  return /^[A-Za-z0-9_-]{1,128}$/.test(slug) ? slug : `tool-timeout-${createHash("sha256").update(callId).digest("hex").slice(0, 32)}`;
}

/**
 * Turn the loop's decision into events; serialised on the log by the runtime, so replicas never decide twice. On a
 * resume, a budget still reached does not pause again at once: the agent waits (unpaused) for what comes next, so
 * that an admin can raise the budget, which starts the waiting request; any other trigger pauses it again.
 */
async function decisionEvents(deps: LlmDeps, state: ConversationState, path: string, log: Logger, onResume = false): Promise<EventInput[]> {
  const decision = decide(state);
  switch (decision.kind) {
    case "none":
      return [];
    case "start-request":
      return startRequest(deps, state, state.config.model ?? deps.defaultModel, path, log);
    case "pause":
      if (decision.reason === BUDGET_PAUSE_REASON) {
        if (onResume) {
          log.info({ budget: decision.detail }, "resumed with the budget still reached: no request until it is raised; the next one pauses again");
          return [];
        }
        log.info({ budget: decision.detail }, "budget reached: pausing before the next model request");
      }
      return [{ type: AgentEventTypes.paused, payload: { reason: decision.reason } }];
    case "cancel-tool-calls":
      return decision.callIds.map((callId) => ({ type: AgentEventTypes.toolCallSettled, payload: { callId, error: "cancelled: the agent was interrupted by new input" } }));
  }
}

/**
 * A request's start, with the compaction it needs first (in the same decision: the start's request is then a
 * function of the log before it). The summary's own usage counts against the budget: if it reaches it, the agent
 * is paused instead of starting the request.
 */
async function startRequest(deps: LlmDeps, state: ConversationState, model: string, path: string, log: Logger): Promise<EventInput[]> {
  const start: EventInput = { type: AgentEventTypes.requestStarted, payload: { model } };
  const compacted = await deps.compactor.compactIfNeeded(state, path, model, log);
  if (compacted === null) return [start];
  const reached = budgetReached(addUsage(state.usage, compacted.usage ?? null), state.budget);
  if (reached === null) return [compactedEvent(compacted), start];
  log.info({ budget: reached }, "budget reached by the compaction's summary: pausing before the model request");
  return [compactedEvent(compacted), { type: AgentEventTypes.paused, payload: { reason: BUDGET_PAUSE_REASON } }];
}

async function runRequest(deps: LlmDeps, { event, stream, log }: ReactionContext<ConversationState>): Promise<EventInput[]> {
  const state = stream.state;
  // A redelivered start whose request already settled (the crash came after the append) runs nothing.
  if (state.settledRequests.includes(event.offset)) return [];
  const result = await executeRequest({ nats: deps.nats, client: deps.client, defaultModel: deps.defaultModel, prices: deps.prices, path: event.streamPath as StreamPath, requestOffset: event.offset, state, log });
  log.info({ status: result.status }, "model request settled");
  const settled: EventInput = { type: AgentEventTypes.requestSettled, payload: { requestOffset: event.offset, result } };
  if (result.status !== "succeeded") return [settled];
  return [
    settled,
    ...result.toolCalls.map((call) => ({ type: AgentEventTypes.toolCallRequested, payload: { requestOffset: event.offset, ...call } })),
    // Nobody may leave a call dangling: if no tool settles it in time, the timeout does (via the scheduler).
    ...result.toolCalls.map((call) => ({
      type: ScheduleEventTypes.added,
      payload: { slug: timeoutSlug(call.callId), append: { type: AgentEventTypes.toolCallTimedOut, payload: { callId: call.callId } }, schedule: { kind: "in", seconds: state.config.toolTimeoutSeconds } },
    })),
  ];
}

/**
 * The loop going on after a fork's stream/forked, or a resume (a paused fork is taken over when it is resumed). A
 * request started in the inherited history has no one to run it (its start is history, never reacted to): it is
 * settled as cancelled and started again, with the same conversation. A request started in the fork itself is
 * left to the reaction that runs it.
 */
async function goOn(deps: LlmDeps, { event, stream, log }: ReactionContext<ConversationState>): Promise<EventInput[]> {
  const state = stream.state;
  const running = state.running;
  const onResume = event.type === SystemEventTypes.resumed;
  if (running === null || state.forkedAt === null || running.offset > state.forkedAt) return decisionEvents(deps, state, event.streamPath, log, onResume);
  const cancelled: EventInput = {
    type: AgentEventTypes.requestSettled,
    payload: { requestOffset: running.offset, result: { status: "cancelled", reason: `in flight when the stream was forked (offset ${state.forkedAt}); started again`, partialText: "" } },
  };
  // Started again as the conversation stands once it is settled: the budget and the window are checked as for any start.
  const after: ConversationState = { ...state, running: null };
  const reached = budgetReached(after.usage, after.budget);
  if (reached !== null) {
    log.info({ budget: reached }, "budget reached: the inherited request is not started again");
    return onResume ? [cancelled] : [cancelled, { type: AgentEventTypes.paused, payload: { reason: BUDGET_PAUSE_REASON } }];
  }
  return [cancelled, ...(await startRequest(deps, after, running.model, event.streamPath, log))];
}

function timeOut(state: ConversationState, event: EventEnvelope): EventInput[] {
  const timedOut = ToolCallTimedOutSchema.safeParse(event.payload);
  if (!timedOut.success || !(timedOut.data.callId in state.pendingToolCalls)) return [];
  return [{ type: AgentEventTypes.toolCallSettled, payload: { callId: timedOut.data.callId, error: `no result within ${state.config.toolTimeoutSeconds} s` } }];
}

/**
 * The agent loop: input → request → settled; tool calls → requested → all
 * settled → next request → … until an answer without tool calls, or the turn
 * limit pauses the agent. Running a request is the reaction to its own
 * `agent/llm-request-started`, so a crash mid-request is redelivered and run again.
 */
export function llmProcessor(deps: LlmDeps): Processor<ConversationState> {
  return {
    name: LLM_NAME,
    triggers: [
      AgentEventTypes.inputAdded,
      AgentEventTypes.requestStarted,
      AgentEventTypes.requestSettled,
      AgentEventTypes.toolCallSettled,
      AgentEventTypes.toolCallTimedOut,
      // A raised budget starts the request that waited for it.
      AgentEventTypes.budgetConfigured,
      // Its own, stored with the start it preceded: a start cut off by a crash is made up for here.
      AgentEventTypes.contextCompacted,
      SystemEventTypes.resumed,
      SystemEventTypes.forked,
    ],
    initialState: initialConversation,
    reduce: reduceConversation,
    // A request's settlement is a fact about that request, keyed by its offset; only decisions wait for a quiet stream.
    serialiseDecisions: (event) => event.type !== AgentEventTypes.requestStarted,
    react: async (context) => {
      const { event, stream } = context;
      if (event.type === AgentEventTypes.requestStarted) return runRequest(deps, context);
      if (event.type === SystemEventTypes.forked || event.type === SystemEventTypes.resumed) return goOn(deps, context);
      if (event.type === AgentEventTypes.toolCallTimedOut) {
        const settled = timeOut(stream.state, event);
        if (settled.length > 0) return settled;
      }
      return decisionEvents(deps, stream.state, event.streamPath, context.log);
    },
  };
}
