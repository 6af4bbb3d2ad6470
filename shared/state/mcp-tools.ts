import type { EventEnvelope } from "../contract/envelope.js";
import { AgentEventTypes } from "../contract/wire.js";
import { McpServersConfiguredSchema, ToolsDiscoveredSchema, type DiscoveredTool, type McpServer, type Tool } from "../contract/events/agent.js";

/**
 * An agent's MCP servers and the tools each offered, rebuilt from the log: what the model is offered besides the
 * tools of agent/configured, and which server answers a call by name (processors/mcp).
 */
export interface McpToolsState {
  /** The offset of the latest agent/mcp-servers-configured, if any: tools listed under an earlier one are gone. */
  configuredOffset: number | null;
  /** As stored: URLs and header values sealed. */
  servers: readonly McpServer[];
  /** Each server's tools, by server name, from its latest agent/tools-discovered under `configuredOffset`. */
  discovered: Readonly<Record<string, readonly DiscoveredTool[]>>;
  /** Why a server's tools could not be listed, by server name. */
  errors: Readonly<Record<string, string>>;
}

export function initialMcpTools(): McpToolsState {
  return { configuredOffset: null, servers: [], discovered: {}, errors: {} };
}

export function reduceMcpTools(state: McpToolsState, event: EventEnvelope): McpToolsState {
  switch (event.type) {
    case AgentEventTypes.mcpServersConfigured: {
      const configured = McpServersConfiguredSchema.safeParse(event.payload);
      if (!configured.success) return state;
      return { configuredOffset: event.offset, servers: configured.data.servers, discovered: {}, errors: {} };
    }
    case AgentEventTypes.toolsDiscovered: {
      const found = ToolsDiscoveredSchema.safeParse(event.payload);
      if (!found.success || found.data.configuredOffset !== state.configuredOffset) return state;
      const { server, tools, error } = found.data;
      if (!state.servers.some((s) => s.name === server)) return state;
      const errors = Object.fromEntries(Object.entries(state.errors).filter(([name]) => name !== server));
      return { ...state, discovered: { ...state.discovered, [server]: tools }, errors: error === undefined ? errors : { ...errors, [server]: error } };
    }
    default:
      return state;
  }
}

/** The MCP tools the model is offered, server by server in the configured order. */
export function offeredMcpTools(state: McpToolsState): Tool[] {
  return state.servers.flatMap((server) => (state.discovered[server.name] ?? []).map(({ name, description, parameters }) => ({ name, description, parameters })));
}

/** The server and tool that answer a call to `name`, or null when no MCP server of the agent offers it. */
export function mcpToolOwner(state: McpToolsState, name: string): { server: McpServer; tool: DiscoveredTool } | null {
  for (const server of state.servers) {
    const tool = state.discovered[server.name]?.find((t) => t.name === name);
    if (tool !== undefined) return { server, tool };
  }
  return null;
}
