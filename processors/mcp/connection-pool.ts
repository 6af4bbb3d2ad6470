import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { DiscoveredTool } from "../../shared/contract/events/agent.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import type { Logger } from "../../shared/service/logger.js";
import { McpConnection, type McpEndpoint } from "./connection.js";

/** Which session: one per agent stream, server and configuration (a new agent/mcp-servers-configured starts afresh). */
export interface ConnectionKey {
  path: StreamPath;
  configuredOffset: number;
  server: string;
}

/** One string per session, for maps keyed by it. */
export function keyOf(key: ConnectionKey): string {
  return `${key.path}\n${key.configuredOffset}\n${key.server}`;
}

/** A session, and the tools it listed when it was opened just now (null for one already open). */
export interface PooledConnection {
  connection: McpConnection;
  listed: DiscoveredTool[] | null;
}

/**
 * The processor's open MCP sessions, opened on first use (listing the server's tools) and closed when idle. Every
 * tool-list change a server announces while its session is open goes to `onToolsChanged`: the caller appends
 * agent/tools-discovered when it differs from what the log holds.
 */
export class ConnectionPool {
  private readonly open = new Map<string, Promise<McpConnection>>();
  private readonly sweeping = { running: false };
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly options: {
      fetch: FetchLike;
      timeoutMs: number;
      idleMs: number;
      log: Logger;
      onToolsChanged: (key: ConnectionKey, tools: DiscoveredTool[]) => void;
    },
  ) {
    this.sweeper = setInterval(() => void this.closeIdle(), Math.min(60_000, options.idleMs));
    this.sweeper.unref();
  }

  /** The session for `key`, opened (and its tools listed) if there is none that still answers. */
  async get(key: ConnectionKey, endpoint: () => Promise<McpEndpoint>): Promise<PooledConnection> {
    const id = keyOf(key);
    const existing = this.open.get(id);
    if (existing !== undefined) {
      const connection = await existing.catch(() => null);
      if (connection !== null && !connection.lost.aborted) return { connection, listed: null };
      if (this.open.get(id) === existing) this.open.delete(id);
    }
    const listed: { tools: DiscoveredTool[] | null } = { tools: null };
    const opening = this.connect(key, endpoint, listed);
    this.open.set(id, opening);
    try {
      return { connection: await opening, listed: listed.tools };
    } catch (err) {
      if (this.open.get(id) === opening) this.open.delete(id);
      throw err;
    }
  }

  private async connect(key: ConnectionKey, endpoint: () => Promise<McpEndpoint>, listed: { tools: DiscoveredTool[] | null }): Promise<McpConnection> {
    const connection = await McpConnection.open(key.server, await endpoint(), {
      fetch: this.options.fetch,
      timeoutMs: this.options.timeoutMs,
      log: this.options.log.child({ streamPath: key.path }),
      onToolsChanged: (tools) => { this.options.onToolsChanged(key, tools); },
    });
    try {
      listed.tools = await connection.listTools(this.options.timeoutMs);
    } catch (err) {
      await connection.close();
      throw err;
    }
    return connection;
  }

  /** Closes the sessions of a stream that belong to another configuration than `configuredOffset`. */
  async retire(path: StreamPath, configuredOffset: number): Promise<void> {
    const stale = [...this.open.entries()].filter(([id]) => id.startsWith(`${path}\n`) && !id.startsWith(`${path}\n${configuredOffset}\n`));
    await Promise.all(stale.map(([id, opening]) => this.drop(id, opening)));
  }

  private async drop(id: string, opening: Promise<McpConnection>): Promise<void> {
    if (this.open.get(id) === opening) this.open.delete(id);
    const connection = await opening.catch(() => null);
    await connection?.close();
  }

  private async closeIdle(): Promise<void> {
    if (this.sweeping.running) return;
    this.sweeping.running = true;
    try {
      const cutoff = Date.now() - this.options.idleMs;
      for (const [id, opening] of [...this.open.entries()]) {
        const connection = await opening.catch(() => null);
        if (connection === null || connection.lost.aborted || (connection.inFlight === 0 && connection.lastUsed < cutoff)) await this.drop(id, opening);
      }
    } finally {
      this.sweeping.running = false;
    }
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.open.entries()].map(([id, opening]) => this.drop(id, opening)));
  }
}
