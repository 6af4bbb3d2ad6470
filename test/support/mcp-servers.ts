import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";
import { freePort } from "./ports.js";

/** The reference server, `@modelcontextprotocol/server-everything`, in its Streamable HTTP mode, as its own process. */
export interface EverythingServer {
  url: string;
  /** kill -9: the server goes away as a crash would take it. */
  kill(): void;
  close(): Promise<void>;
}

export async function startEverythingServer(): Promise<EverythingServer> {
  const port = await freePort();
  const entry = join(process.cwd(), "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
  const child: ChildProcess = spawn(process.execPath, [entry, "streamableHttp"], { env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`server-everything did not start; its output:\n${output.join("")}`)); }, 20_000);
    const onData = (chunk: Buffer): void => {
      output.push(chunk.toString());
      if (output.join("").includes(`listening on port ${port}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything exited with ${code}; its output:\n${output.join("")}`));
    });
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => { resolve(); }));
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    kill: () => child.kill("SIGKILL"),
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * A small MCP server on the official SDK, for what the reference server cannot be made to do on demand: change its
 * tool list while a client is connected (`add-tool`), count its calls (`count`), and hold a call until it is
 * cancelled (`wait`). Every session sees the same tools, as one server's would.
 */
export interface ScriptedMcpServer {
  url: string;
  calls: Record<string, number>;
  cancelled: string[];
  /** Headers of the last request, as received. */
  lastHeaders: IncomingMessage["headers"];
  close(): Promise<void>;
}

export async function startScriptedMcpServer(port = 0): Promise<ScriptedMcpServer> {
  const state: ScriptedMcpServer = { url: "", calls: {}, cancelled: [], lastHeaders: {}, close: () => Promise.resolve() };
  const sessions = new Map<string, { server: McpServer; transport: StreamableHTTPServerTransport }>();
  const extraTools: string[] = [];
  const count = (name: string): void => void (state.calls[name] = (state.calls[name] ?? 0) + 1);

  const register = (server: McpServer, name: string): void => {
    server.registerTool(name, { description: `added at run time: ${name}`, inputSchema: {} }, () => {
      count(name);
      return { content: [{ type: "text", text: `${name} ran` }] };
    });
  };
  const newServer = (): McpServer => {
    const server = new McpServer({ name: "scripted", version: "1.0.0" }, { capabilities: { tools: { listChanged: true } } });
    server.registerTool("count", { description: "counts its calls", inputSchema: { label: z.string() } }, ({ label }) => {
      count("count");
      return { content: [{ type: "text", text: `counted ${label}` }], structuredContent: { calls: state.calls.count ?? 0 } };
    });
    server.registerTool("add-tool", { description: "adds a tool to the server", inputSchema: { name: z.string() } }, ({ name }) => {
      count("add-tool");
      extraTools.push(name);
      // Every open session is told, as a server whose tools changed tells its clients.
      for (const session of sessions.values()) register(session.server, name);
      return { content: [{ type: "text", text: `added ${name}` }] };
    });
    server.registerTool("wait", { description: "waits until cancelled", inputSchema: { label: z.string() } }, ({ label }, extra) => {
      count("wait");
      return new Promise((resolve) => {
        extra.signal.addEventListener("abort", () => {
          state.cancelled.push(label);
          resolve({ content: [{ type: "text", text: "cancelled" }] });
        });
      });
    });
    for (const name of extraTools) register(server, name);
    return server;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    state.lastHeaders = req.headers;
    const sessionId = req.headers["mcp-session-id"];
    const existing = typeof sessionId === "string" ? sessions.get(sessionId) : undefined;
    if (existing !== undefined) {
      await existing.transport.handleRequest(req, res);
      return;
    }
    const server = newServer();
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void sessions.set(id, { server, transport }),
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    await transport.handleRequest(req, res);
  };
  const http = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => http.listen(port, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  state.close = async () => {
    await Promise.allSettled([...sessions.values()].map((s) => s.server.close()));
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => { resolve(); }));
  };
  return state;
}
