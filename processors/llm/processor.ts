import { createHash } from "node:crypto";
import type { EventEnvelope, EventInput } from "../../shared/contract/envelope.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { Processor, ReactionContext } from "../runtime/runtime.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { initialConversation, reduceConversation, type ConversationState } from "../../shared/state/conversation.js";
import { decide } from "./decision.js";
import { ToolCallTimedOutSchema } from "../../shared/contract/events/agent.js";
import { AgentEventTypes, ScheduleEventTypes, SystemEventTypes, ProcessorNames } from "../../shared/contract/wire.js";
import { executeRequest } from "./executor.js";
import type { ModelClient } from "./model-client.js";

export const LLM_NAME = ProcessorNames.llm;

export interface LlmDeps {
  nats: Nats;
  client: ModelClient;
  defaultModel: string;
}

/** A schedule slug for a tool call's timeout: call ids are the model's, so unsafe ones are hashed. */
function timeoutSlug(callId: string): string {
  const slug = `tool-timeout-${callId}`;
  return /^[A-Za-z0-9_-]{1,128}$/.test(slug) ? slug : `tool-timeout-${createHash("sha256").update(callId).digest("hex").slice(0, 32)}`;
}

/** Turn the loop's decision into events; serialised on the log by the runtime, so replicas never decide twice. */
function decisionEvents(state: ConversationState, defaultModel: string): EventInput[] {
  const decision = decide(state);
  switch (decision.kind) {
    case "none":
      return [];
    case "start-request":
      return [{ type: AgentEventTypes.requestStarted, payload: { model: state.config.model ?? defaultModel } }];
    case "pause":
      return [{ type: AgentEventTypes.paused, payload: { reason: decision.reason } }];
    case "cancel-tool-calls":
      return decision.callIds.map((callId) => ({ type: AgentEventTypes.toolCallSettled, payload: { callId, error: "cancelled: the agent was interrupted by new input" } }));
  }
}

async function runRequest(deps: LlmDeps, { event, stream, log }: ReactionContext<ConversationState>): Promise<EventInput[]> {
  const state = stream.state;
  // A redelivered start whose request already settled (the crash came after the append) runs nothing.
  if (state.settledRequests.includes(event.offset)) return [];
  const result = await executeRequest({ nats: deps.nats, client: deps.client, defaultModel: deps.defaultModel, path: event.streamPath as StreamPath, requestOffset: event.offset, state, log });
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
function goOn(state: ConversationState, defaultModel: string): EventInput[] {
  const running = state.running;
  if (running === null || state.forkedAt === null || running.offset > state.forkedAt) return decisionEvents(state, defaultModel);
  return [
    { type: AgentEventTypes.requestSettled, payload: { requestOffset: running.offset, result: { status: "cancelled", reason: `in flight when the stream was forked (offset ${state.forkedAt}); started again`, partialText: "" } } },
    { type: AgentEventTypes.requestStarted, payload: { model: running.model } },
  ];
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
      if (event.type === SystemEventTypes.forked || event.type === SystemEventTypes.resumed) return goOn(stream.state, deps.defaultModel);
      if (event.type === AgentEventTypes.toolCallTimedOut) {
        const settled = timeOut(stream.state, event);
        if (settled.length > 0) return settled;
      }
      return decisionEvents(stream.state, deps.defaultModel);
    },
  };
}
