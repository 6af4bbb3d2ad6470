import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { AgentConfiguredSchema, ToolCallRequestedSchema, ToolCallSettledSchema } from "../../shared/contract/events/agent.js";
import { AgentEventTypes, SystemEventTypes } from "../../shared/contract/wire.js";
import { initialMcpTools, reduceMcpTools, type McpToolsState } from "../../shared/state/mcp-tools.js";

export interface OpenCall {
  name: string;
  arguments: string;
  /** The offset of its agent/tool-call-requested. */
  offset: number;
}

/** What the mcp processor knows of a stream: its servers and tools, the calls not settled yet, and its pauses and fork. */
export interface McpProcessorState {
  mcp: McpToolsState;
  toolTimeoutSeconds: number;
  openCalls: Readonly<Record<string, OpenCall>>;
  /** The offset of the stream's latest pause: calls requested before it are called again on resume. */
  pausedAt: number | null;
  /** In a fork, the offset of its own stream/forked: calls requested before it are inherited, and called in the fork. */
  forkedAt: number | null;
}

export function initialMcpProcessorState(): McpProcessorState {
  return { mcp: initialMcpTools(), toolTimeoutSeconds: AgentConfiguredSchema.parse({}).toolTimeoutSeconds, openCalls: {}, pausedAt: null, forkedAt: null };
}

export function reduceMcpProcessorState(state: McpProcessorState, event: EventEnvelope): McpProcessorState {
  switch (event.type) {
    case AgentEventTypes.configured: {
      const config = AgentConfiguredSchema.safeParse(event.payload);
      return config.success ? { ...state, toolTimeoutSeconds: config.data.toolTimeoutSeconds } : state;
    }
    case AgentEventTypes.mcpServersConfigured:
    case AgentEventTypes.toolsDiscovered:
      return { ...state, mcp: reduceMcpTools(state.mcp, event) };
    case AgentEventTypes.toolCallRequested: {
      const requested = ToolCallRequestedSchema.safeParse(event.payload);
      if (!requested.success) return state;
      const { callId, name, arguments: args } = requested.data;
      return { ...state, openCalls: { ...state.openCalls, [callId]: { name, arguments: args, offset: event.offset } } };
    }
    case AgentEventTypes.toolCallSettled: {
      const settled = ToolCallSettledSchema.safeParse(event.payload);
      if (!settled.success || !(settled.data.callId in state.openCalls)) return state;
      const callId = settled.data.callId;
      return { ...state, openCalls: Object.fromEntries(Object.entries(state.openCalls).filter(([id]) => id !== callId)) };
    }
    case SystemEventTypes.paused:
    case SystemEventTypes.agentPaused:
      return { ...state, pausedAt: event.offset };
    case SystemEventTypes.forked:
      return event.forkedFrom === undefined && state.forkedAt === null ? { ...state, forkedAt: event.offset } : state;
    default:
      return state;
  }
}
