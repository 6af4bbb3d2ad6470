import { createHash } from "node:crypto";
import type { EventEnvelope, EventInput } from "../../shared/contract/envelope.js";
import { ToolCallRequestedSchema, type DiscoveredTool, type McpServer } from "../../shared/contract/events/agent.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { AgentEventTypes, ProcessorNames, SystemEventTypes } from "../../shared/contract/wire.js";
import { appendEvents } from "../../shared/log/append.js";
import { openSecret, type SecretBox } from "../../shared/log/secrets.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import { serviceWriter } from "../../shared/log/writer.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { AddressGuard } from "../../shared/outbound/address-guard.js";
import type { Logger } from "../../shared/service/logger.js";
import { mcpToolOwner } from "../../shared/state/mcp-tools.js";
import type { Processor, ReactionContext } from "../runtime/runtime.js";
import type { McpConfig } from "./config.js";
import type { McpEndpoint } from "./connection.js";
import { keyOf, type ConnectionKey, type ConnectionPool } from "./connection-pool.js";
import { initialMcpProcessorState, reduceMcpProcessorState, type McpProcessorState, type OpenCall } from "./state.js";
import { runMcpCall } from "./tool-call.js";

export const MCP_NAME = ProcessorNames.mcp;

export interface McpDeps {
  nats: Nats;
  indexes: StreamIndexes;
  pool: ConnectionPool;
  guard: AddressGuard;
  secrets: SecretBox | null;
  config: McpConfig;
}

function toolsHash(tools: readonly DiscoveredTool[]): string {
  return createHash("sha256").update(JSON.stringify(tools)).digest("hex").slice(0, 16);
}

/** A server's endpoint in clear: its URL and headers opened, the URL checked against the guard; or why not. */
async function endpointOf(deps: McpDeps, path: StreamPath, server: McpServer, index: number): Promise<McpEndpoint> {
  if (server.url === undefined) {
    const local = deps.config.MCP_LOCAL_SERVERS[server.name];
    if (local === undefined) throw new Error(`no local MCP server named "${server.name}" is configured on the mcp processor (MCP_LOCAL_SERVERS)`);
    return { kind: "local", server: local };
  }
  const type = AgentEventTypes.mcpServersConfigured;
  const url = openSecret(deps.secrets, server.url, path, type, `servers.${index}.url`);
  const refusal = await deps.guard.resolvedUrlRefusal(url);
  if (refusal !== null) throw new Error(`refused: ${refusal}`);
  const headers = Object.fromEntries(Object.entries(server.headers ?? {}).map(([name, value]) => [name, openSecret(deps.secrets, value, path, type, `servers.${index}.headers.${name}`)]));
  return { kind: "http", url, headers };
}

function connectionKey(path: StreamPath, state: McpProcessorState, server: string): ConnectionKey | null {
  const configuredOffset = state.mcp.configuredOffset;
  return configuredOffset === null ? null : { path, configuredOffset, server };
}

function discoveredEvent(key: ConnectionKey, tools: DiscoveredTool[], error?: string): EventInput & { payload: unknown } {
  return { type: AgentEventTypes.toolsDiscovered, payload: { server: key.server, configuredOffset: key.configuredOffset, tools, ...(error === undefined ? {} : { error }) } };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The mcp processor: lists the tools of each MCP server an agent names (agent/mcp-servers-configured) and appends
 * them as agent/tools-discovered, which the LLM processor offers the model; answers agent/tool-call-requested for
 * those tools with `tools/call`; picks up a server's tool-list changes. docs/ARCHITECTURE.md, "MCP tools".
 */
export function mcpProcessor(deps: McpDeps): Processor<McpProcessorState> & { onToolsChanged: (key: ConnectionKey, tools: DiscoveredTool[]) => void } {
  const { nats, pool } = deps;
  /** What this replica last saw in the log (or appended) of each session's tools: a change is appended once. */
  const known = new Map<string, string>();
  const remember = (key: ConnectionKey, tools: readonly DiscoveredTool[]): void => void known.set(keyOf(key), toolsHash(tools));

  const connect = async (path: StreamPath, state: McpProcessorState, key: ConnectionKey) => {
    const index = state.mcp.servers.findIndex((s) => s.name === key.server);
    const server = state.mcp.servers[index];
    if (server === undefined) throw new Error(`the agent has no MCP server named "${key.server}"`);
    return pool.get(key, () => endpointOf(deps, path, server, index));
  };

  async function discover(path: StreamPath, state: McpProcessorState, event: EventEnvelope, log: Logger): Promise<EventInput[]> {
    // A later configuration replaces this one: its own reaction lists its servers.
    if (state.mcp.configuredOffset !== event.offset) return [];
    await pool.retire(path, event.offset);
    return list(path, state, state.mcp.servers, log);
  }

  /**
   * Servers whose tools could not be listed are tried again at the agent's next input (the model is about to be
   * offered its tools); one still failing appends nothing more.
   */
  async function retryFailed(path: StreamPath, state: McpProcessorState, log: Logger): Promise<EventInput[]> {
    const failed = state.mcp.servers.filter((server) => server.name in state.mcp.errors);
    if (failed.length === 0) return [];
    const listed = await list(path, state, failed, log);
    return listed.filter((event) => (event.payload as { error?: string }).error === undefined);
  }

  function list(path: StreamPath, state: McpProcessorState, servers: readonly McpServer[], log: Logger): Promise<(EventInput & { payload: unknown })[]> {
    const configuredOffset = state.mcp.configuredOffset;
    if (configuredOffset === null) return Promise.resolve([]);
    return Promise.all(
      servers.map(async (server) => {
        const key: ConnectionKey = { path, configuredOffset, server: server.name };
        try {
          const { connection, listed } = await connect(path, state, key);
          const tools = listed ?? (await connection.listTools(deps.config.MCP_CONNECT_TIMEOUT_MS));
          remember(key, tools);
          log.info({ mcpServer: server.name, tools: tools.length }, "MCP server's tools listed");
          return discoveredEvent(key, tools);
        } catch (err) {
          log.warn({ err, mcpServer: server.name }, "could not list an MCP server's tools");
          return discoveredEvent(key, [], `could not list the tools of the MCP server "${server.name}": ${messageOf(err)}`);
        }
      }),
    );
  }

  async function call(path: StreamPath, state: McpProcessorState, callId: string, open: OpenCall, log: Logger): Promise<EventInput[]> {
    const owner = mcpToolOwner(state.mcp, open.name);
    if (owner === null) return [];
    const key = connectionKey(path, state, owner.server.name);
    if (key === null) return [];
    const callLog = log.child({ callId, tool: owner.tool.mcpName, mcpServer: owner.server.name });
    let pooled;
    try {
      pooled = await connect(path, state, key);
    } catch (err) {
      return [{ type: AgentEventTypes.toolCallSettled, payload: { callId, error: `could not reach the MCP server "${owner.server.name}": ${messageOf(err)}` } }];
    }
    // A session opened just now listed the tools again: a change since the log's list is recorded before the answer.
    const changed = pooled.listed !== null && toolsHash(pooled.listed) !== toolsHash(state.mcp.discovered[key.server] ?? []);
    if (pooled.listed !== null) remember(key, pooled.listed);
    const settlement = await runMcpCall(
      { ...open, callId, mcpName: owner.tool.mcpName, server: owner.server.name },
      { nats, path, connection: pooled.connection, timeoutMs: state.toolTimeoutSeconds * 1000, maxResultBytes: deps.config.MCP_MAX_RESULT_BYTES, log: callLog },
    );
    // The settlement first: a crash between the two would otherwise leave the call answered by no one.
    return changed && pooled.listed !== null ? [...settlement, discoveredEvent(key, pooled.listed)] : settlement;
  }

  /** The open calls nobody is running: inherited by a fork, or cut short by a pause, called again. */
  async function takeOver(path: StreamPath, state: McpProcessorState, before: number | null, log: Logger): Promise<EventInput[]> {
    if (before === null) return [];
    const orphaned = Object.entries(state.openCalls).filter(([, open]) => open.offset < before && mcpToolOwner(state.mcp, open.name) !== null);
    if (orphaned.length > 0) log.info({ calls: orphaned.length }, "calling again the MCP tool calls nobody is running");
    const settlements = await Promise.all(orphaned.map(([callId, open]) => call(path, state, callId, open, log)));
    return settlements.flat();
  }

  const onToolsChanged = (key: ConnectionKey, tools: DiscoveredTool[]): void => {
    const hash = toolsHash(tools);
    if (known.get(keyOf(key)) === hash) return;
    known.set(keyOf(key), hash);
    appendEvents(nats, key.path, [{ ...discoveredEvent(key, tools), source: { processor: MCP_NAME, causationOffset: key.configuredOffset }, idempotencyKey: `${MCP_NAME}:tools:${key.configuredOffset}:${key.server}:${hash}` }], {
      writer: serviceWriter(MCP_NAME),
      indexes: deps.indexes,
    }).catch(() => known.delete(keyOf(key)));
  };

  return {
    onToolsChanged,
    name: MCP_NAME,
    triggers: [AgentEventTypes.mcpServersConfigured, AgentEventTypes.toolCallRequested, AgentEventTypes.inputAdded, SystemEventTypes.forked, SystemEventTypes.resumed],
    initialState: initialMcpProcessorState,
    reduce: reduceMcpProcessorState,
    // A settlement is a fact about its call, keyed by the event it answers; discovery is keyed by its configuration.
    serialiseDecisions: false,
    react: async ({ event, stream, log }: ReactionContext<McpProcessorState>) => {
      const path = event.streamPath as StreamPath;
      const state = stream.state;
      for (const server of state.mcp.servers) {
        const key = connectionKey(path, state, server.name);
        const tools = state.mcp.discovered[server.name];
        if (key !== null && tools !== undefined && !known.has(keyOf(key))) remember(key, tools);
      }
      switch (event.type) {
        case AgentEventTypes.mcpServersConfigured:
          return discover(path, state, event, log);
        case AgentEventTypes.toolCallRequested: {
          const callId = ToolCallRequestedSchema.safeParse(event.payload).data?.callId;
          // Settled already (a redelivery after the answer was stored): never called twice.
          const open = callId === undefined ? undefined : state.openCalls[callId];
          return callId === undefined || open === undefined ? [] : call(path, state, callId, open, log);
        }
        case AgentEventTypes.inputAdded:
          return retryFailed(path, state, log);
        case SystemEventTypes.forked:
          return event.forkedFrom === undefined ? takeOver(path, state, state.forkedAt, log) : [];
        case SystemEventTypes.resumed:
          return takeOver(path, state, state.pausedAt, log);
        default:
          return [];
      }
    },
  };
}
