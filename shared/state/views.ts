import type { EventEnvelope } from "../contract/envelope.js";
import { ProcessorNames } from "../contract/wire.js";
import { initialBreakerState, reduceBreaker, type BreakerLimits } from "./breaker.js";
import { initialConversation, offeredTools, reduceConversation, runningRequest } from "./conversation.js";
import { initialSchedules, reduceSchedules } from "./schedules.js";
import { initialSubscriptions, reduceSubscriptions } from "./subscriptions.js";
import { initialSystemState, reduceSystemState } from "./system-state.js";

/**
 * Each shipped processor's view of one stream, folded by the processor's own
 * reducer and shown as plain JSON: what `GET /streams/<path>/state` answers and
 * the console's time travel shows. A view is a running fold, so one read of the
 * log feeds every view at once.
 */
export interface StateFold {
  add(event: EventEnvelope): void;
  /** The state after the last event added, as JSON. */
  present(): unknown;
}

export const VIEWED_PROCESSORS = [ProcessorNames.llm, ProcessorNames.breaker, ProcessorNames.scheduler, ProcessorNames.webhookPusher] as const;
export type ViewedProcessor = (typeof VIEWED_PROCESSORS)[number];

function fold<S>(initial: S, reduce: (state: S, event: EventEnvelope) => S, present: (state: S) => unknown): StateFold {
  let state = initial;
  return {
    add: (event) => {
      state = reduce(state, event);
    },
    present: () => present(state),
  };
}

/** What every processor of the stream shares: whether it is paused, and the processor's own recent reactions. */
function systemFold(processor: string): StateFold {
  return fold(initialSystemState(), (state, event) => reduceSystemState(state, event, processor), (state) => ({ paused: state.paused, reactedTo: state.reactedTo.window() }));
}

function processorFold(processor: ViewedProcessor, breakerDefaults: BreakerLimits): StateFold {
  switch (processor) {
    case ProcessorNames.llm:
      return fold(initialConversation(), reduceConversation, (state) => ({
        config: state.config,
        messages: state.messages.toArray(),
        running: state.running,
        // Exactly what the running request sent the model: the executor sends this same value.
        request: runningRequest(state),
        pendingToolCalls: state.pendingToolCalls,
        wantsRequest: state.wantsRequest,
        autonomousTurns: state.autonomousTurns,
        interruptAt: state.interruptAt,
        deferred: state.deferred.toArray(),
        // What the agent's requests used (summaries included) and may use: the console's and `agentmesh state`'s usage.
        usage: state.usage,
        budget: state.budget,
        compaction: state.compaction,
        // Every tool the model is offered now (MCP servers' included), and each MCP server's count or why it has none.
        tools: offeredTools(state),
        mcpServers: state.mcp.servers.map((server) => ({ name: server.name, tools: (state.mcp.discovered[server.name] ?? []).length, error: state.mcp.errors[server.name] ?? null })),
      }));
    case ProcessorNames.breaker:
      return fold(initialBreakerState(breakerDefaults), reduceBreaker, (state) => ({ limits: state.limits, tokens: state.tokens, lastEventAt: state.lastMs === null ? null : new Date(state.lastMs).toISOString(), eventsInLastSecond: state.recent.count, tripped: state.tripped }));
    case ProcessorNames.scheduler:
      return fold(initialSchedules(), reduceSchedules, (state) => state);
    case ProcessorNames.webhookPusher:
      return fold(initialSubscriptions(), reduceSubscriptions, (state) => state);
  }
}

/** One fold per processor named: the processor's domain state beside the state every processor keeps (`stream`). */
export function processorFolds(processors: readonly ViewedProcessor[], breakerDefaults: BreakerLimits): Map<ViewedProcessor, { domain: StateFold; stream: StateFold }> {
  return new Map(processors.map((name) => [name, { domain: processorFold(name, breakerDefaults), stream: systemFold(name) }]));
}
