import type { FastifyInstance } from "fastify";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { AppendHold } from "../../shared/log/append.js";
import type { SecretBox } from "../../shared/log/secrets.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { Logger } from "../../shared/service/logger.js";
import type { AccessControl } from "../auth/access.js";
import type { ConnectionLimiter } from "../limits.js";
import { RouteDocs } from "../openapi.js";
import { mcpPathFromUrl } from "../stream-url.js";
import { agentServer } from "./agent-server.js";
import { DEFAULT_ASK_TIMEOUT_MS } from "./ask.js";

export interface McpRouteDeps {
  nats: Nats;
  indexes: StreamIndexes;
  access: AccessControl;
  /** Live connections per client (SSE_MAX_CONNECTIONS_PER_CLIENT), shared with the other faces. */
  connections: ConnectionLimiter;
  secrets: SecretBox | null;
  hold: AppendHold;
  logger: Logger;
  /** How long `ask` waits for an answer unless the call says (default 120 s). */
  askTimeoutMs?: number;
}

/** JSON-RPC's "server error" range: what the transport itself answers for refusals outside a request (MCP spec, "Streamable HTTP"). */
const JSONRPC_SERVER_ERROR = -32000;
const JSONRPC_INTERNAL_ERROR = -32603;

/**
 * `/mcp/<path>`: every agent is also an MCP server (Streamable HTTP transport, the official SDK), so an MCP client (an
 * IDE, another agent) can talk to it. Authenticated like every route: no token 401, no `read` on the path 403,
 * before the transport sees anything; each tool then needs what its HTTP counterpart needs (agent-server.ts).
 *
 * Stateless (`sessionIdGenerator: undefined`): a fresh server and transport per POST, nothing kept between requests.
 * Behind several gateway replicas, a session would tie a client to the replica holding it (in-memory, lost when that
 * replica restarts), and there is nothing a session would hold: every tool answers from the log, which every replica
 * reads, and the client's identity is its bearer token, sent on every request. What a session would add, a standalone
 * GET stream for server-initiated messages, the server has no use for (progress of `ask` goes on the POST's own
 * stream), so GET is `405` as the spec allows for it.
 */
export function registerMcpRoutes(app: FastifyInstance, deps: McpRouteDeps): void {
  const serverDeps = { nats: deps.nats, indexes: deps.indexes, secrets: deps.secrets, hold: deps.hold, logger: deps.logger, askTimeoutMs: deps.askTimeoutMs ?? DEFAULT_ASK_TIMEOUT_MS };

  app.post("/mcp/*", { schema: RouteDocs.mcp }, async (request, reply) => {
    const path = mcpPathFromUrl(request.url);
    // Refusals are the gateway's own (401 with WWW-Authenticate, 403), with our error body, before the transport runs.
    await deps.access.require(request, "read", { kind: "stream", path });
    const writer = await deps.access.writer(request);
    const server = agentServer(serverDeps, { path, writer, log: request.log });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    // An `ask` holds its response open while the agent works: counted with the client's other live connections.
    const release = await deps.connections.acquire(request);
    reply.hijack();
    // The response ended or the client left: closing the server aborts a tool still running (an `ask` still waiting).
    reply.raw.once("close", () => {
      release();
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      // Fastify has read and parsed the body (with its body limit): the transport takes it as parsed.
      await transport.handleRequest(request.raw, reply.raw, request.body);
    } catch (err) {
      request.log.error({ err }, "MCP request failed");
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code: JSONRPC_INTERNAL_ERROR, message: "Internal error" }, id: null }));
      } else reply.raw.end();
    }
    return reply;
  });

  // No session, so no stream of server-initiated messages to open (above); the SDK's client takes 405 as that answer.
  app.get("/mcp/*", { schema: RouteDocs.mcpStream, exposeHeadRoute: false }, async (request, reply) => {
    await deps.access.require(request, "read", { kind: "stream", path: mcpPathFromUrl(request.url) });
    return reply
      .code(405)
      .header("allow", "POST")
      .type("application/json")
      .send({ jsonrpc: "2.0", error: { code: JSONRPC_SERVER_ERROR, message: "Method not allowed: this MCP server is stateless and opens no stream of its own; POST JSON-RPC messages" }, id: null });
  });
}
