import type { DiscoveredTool } from "../../shared/contract/events/agent.js";
import { SecretBox } from "../../shared/log/secrets.js";
import { AddressGuard } from "../../shared/outbound/address-guard.js";
import type { ProcessorDeps } from "../runtime/run-processor.js";
import type { Processor } from "../runtime/runtime.js";
import { loadMcpConfig } from "./config.js";
import { guardedFetch } from "./connection.js";
import { ConnectionPool, type ConnectionKey } from "./connection-pool.js";
import { mcpProcessor } from "./processor.js";
import type { McpProcessorState } from "./state.js";

/** Wires the mcp processor: the address guard every MCP request goes through, the sessions, and the processor. */
export function buildMcp(deps: ProcessorDeps, env: NodeJS.ProcessEnv): Processor<McpProcessorState> {
  const config = loadMcpConfig(env);
  const guard = new AddressGuard(config.MCP_ALLOWED_NETWORKS, "MCP_ALLOWED_NETWORKS");
  const secrets = config.SECRETS_KEYS === undefined ? null : new SecretBox(config.SECRETS_KEYS);
  const outbound = guardedFetch(guard);
  // The pool hears tool-list changes before the processor exists to append them.
  const changes: { handle: (key: ConnectionKey, tools: DiscoveredTool[]) => void } = { handle: () => undefined };
  const pool = new ConnectionPool({
    fetch: outbound.fetch,
    timeoutMs: config.MCP_CONNECT_TIMEOUT_MS,
    idleMs: config.MCP_IDLE_MS,
    log: deps.logger,
    onToolsChanged: (key, tools) => { changes.handle(key, tools); },
  });
  const { onToolsChanged, ...processor } = mcpProcessor({ nats: deps.nats, indexes: deps.indexes, pool, guard, secrets, config });
  changes.handle = onToolsChanged;
  deps.logger.info({ localServers: Object.keys(config.MCP_LOCAL_SERVERS), allowedNetworks: [...config.MCP_ALLOWED_NETWORKS] }, "mcp processor configured");
  deps.onStop(async () => {
    await pool.closeAll();
    await outbound.close();
  });
  return processor;
}
