import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { FetchLike, Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { McpError, type CallToolResult, type CompatibilityCallToolResult, type Tool as McpTool } from "@modelcontextprotocol/sdk/types.js";
import { fetch as undiciFetch, type RequestInit as UndiciRequestInit } from "undici";
import type { DiscoveredTool } from "../../shared/contract/events/agent.js";
import type { AddressGuard } from "../../shared/outbound/address-guard.js";
import type { Logger } from "../../shared/service/logger.js";
import type { LocalServer } from "./config.js";
import { exposedToolNames } from "./tool-names.js";

/** Where a server is reached, in clear (opened from the log for this connection only). */
export type McpEndpoint = { kind: "http"; url: string; headers: Record<string, string> } | { kind: "local"; server: LocalServer };

export interface McpCallOptions {
  signal: AbortSignal;
  timeoutMs: number;
  onProgress: (progress: { progress: number; total?: number; message?: string }) => void;
}

/** A dispatcher whose connections check each resolved address against the guard (SSRF), for every MCP request. */
export function guardedFetch(guard: AddressGuard): { fetch: FetchLike; close: () => Promise<void> } {
  const dispatcher = guard.dispatcher();
  const fetch: FetchLike = async (url, init) => {
    // The SDK speaks the WHATWG fetch types; undici's (the same objects, its own declarations) are handed over as such.
    const response = await undiciFetch(url, { ...(init as UndiciRequestInit), dispatcher });
    const body = [101, 204, 205, 304].includes(response.status) ? null : response.body;
    return new Response(body, { status: response.status, statusText: response.statusText, headers: new Headers([...response.headers]) });
  };
  return { fetch, close: () => dispatcher.close() };
}

/** The tools as the model is offered them: a name unique across the agent's servers, the server's own kept beside it. */
function discovered(serverName: string, tools: readonly McpTool[]): DiscoveredTool[] {
  const names = exposedToolNames(
    serverName,
    tools.map((t) => t.name),
  );
  return tools.map((tool) => ({
    name: names.get(tool.name) ?? tool.name,
    mcpName: tool.name,
    description: tool.description ?? tool.title ?? "",
    parameters: tool.inputSchema,
  }));
}

/**
 * One live MCP session with one of an agent's servers: lists its tools, calls them, and hears its tool list change.
 * `lost` is aborted, with the reason, once the transport has given up on the server (its reconnections exhausted, or
 * the session closed): calls in flight end with that reason instead of waiting out their timeout.
 */
export class McpConnection {
  private readonly lostController = new AbortController();
  lastUsed = Date.now();
  /** Calls running now: an idle sweep never closes a session in the middle of one. */
  inFlight = 0;

  private constructor(
    readonly serverName: string,
    private readonly client: Client,
    private readonly log: Logger,
  ) {}

  static async open(serverName: string, endpoint: McpEndpoint, options: { fetch: FetchLike; timeoutMs: number; log: Logger; onToolsChanged: (tools: DiscoveredTool[]) => void }): Promise<McpConnection> {
    const log = options.log.child({ mcpServer: serverName });
    const client = new Client(
      { name: "agentmesh-mcp", version: "1.0.0" },
      {
        capabilities: {},
        listChanged: {
          tools: {
            onChanged: (error, tools) => {
              if (error !== null) log.warn({ err: error }, "could not list the tools again after a change");
              else if (tools !== null) options.onToolsChanged(discovered(serverName, tools));
            },
          },
        },
      },
    );
    const transport: Transport =
      endpoint.kind === "http"
        ? new StreamableHTTPClientTransport(new URL(endpoint.url), {
            fetch: options.fetch,
            requestInit: { headers: endpoint.headers },
            // A server that went away is given up on within seconds, so that a call in flight ends with an error.
            reconnectionOptions: { initialReconnectionDelay: 500, maxReconnectionDelay: 2_000, reconnectionDelayGrowFactor: 2, maxRetries: 2 },
          })
        : new StdioClientTransport({ command: endpoint.server.command, args: endpoint.server.args, ...(endpoint.server.env === undefined ? {} : { env: endpoint.server.env }), ...(endpoint.server.cwd === undefined ? {} : { cwd: endpoint.server.cwd }), stderr: "ignore" });
    const connection = new McpConnection(serverName, client, log);
    client.onerror = (err) => {
      // Reconnection given up (HTTP), or the process gone (stdio): the session cannot answer again.
      if (/Maximum reconnection attempts|Failed to reconnect/.test(err.message)) connection.markLost(err.message);
      else log.debug({ err }, "MCP transport error");
    };
    client.onclose = () => { connection.markLost("the session closed"); };
    await client.connect(transport, { timeout: options.timeoutMs });
    return connection;
  }

  get lost(): AbortSignal {
    return this.lostController.signal;
  }

  private markLost(reason: string): void {
    if (this.lost.aborted) return;
    this.log.warn({ reason }, "MCP server connection lost");
    this.lostController.abort(new Error(reason));
  }

  async listTools(timeoutMs: number): Promise<DiscoveredTool[]> {
    this.lastUsed = Date.now();
    const tools: McpTool[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.client.listTools(cursor === undefined ? undefined : { cursor }, { timeout: timeoutMs, signal: this.lost });
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return discovered(this.serverName, tools);
  }

  async callTool(name: string, args: Record<string, unknown>, options: McpCallOptions): Promise<CallToolResult | CompatibilityCallToolResult> {
    this.lastUsed = Date.now();
    this.inFlight += 1;
    try {
      return await this.client.callTool({ name, arguments: args }, undefined, {
        signal: AbortSignal.any([options.signal, this.lost]),
        timeout: options.timeoutMs,
        resetTimeoutOnProgress: true,
        onprogress: options.onProgress,
      });
    } catch (err) {
      // A JSON-RPC error is the server's answer; anything else (HTTP 404 for a session the server forgot, a refused
      // connection) means this session cannot serve again. A call cancelled by its caller says nothing about it.
      if (!(err instanceof McpError) && !options.signal.aborted) this.markLost(err instanceof Error ? err.message : String(err));
      throw err;
    } finally {
      this.inFlight -= 1;
      this.lastUsed = Date.now();
    }
  }

  async close(): Promise<void> {
    this.lostController.abort(new Error("closed by the processor"));
    await this.client.close().catch((err: unknown) => { this.log.debug({ err }, "closing an MCP session failed"); });
  }
}
