import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { buildLlm } from "../../processors/llm/service.js";
import { buildMcp } from "../../processors/mcp/service.js";
import { request, startGateway, TEST_SECRETS_KEYS, uniquePath, type TestGateway } from "../support/gateway.js";
import { startModelServer, type ModelServer, type RecordedRequest } from "../support/model-server.js";
import { startEverythingServer, startScriptedMcpServer, type EverythingServer, type ScriptedMcpServer } from "../support/mcp-servers.js";
import { readAll, runBuiltProcessor, uniqueName, waitFor, waitForSettledProcessor } from "../support/processors.js";
import { openSse } from "../support/sse.js";
import { freePort } from "../support/ports.js";

/**
 * The mcp processor against real MCP servers over Streamable HTTP: the reference server-everything (its own
 * process), and a small SDK server for a tool list that changes, a call counter and a call held until cancelled.
 * The model is the scripted OpenAI-compatible server; the LLM processor offers it the discovered tools.
 */

let gw: TestGateway;
let model: ModelServer;
let everything: EverythingServer;
let scripted: ScriptedMcpServer;
const running: RunningProcessor[] = [];
const root = uniquePath("mcp");
const filterSubject = `${eventsSubject(parseStreamPath(root))}.>`;
const mcpName = uniqueName("mcp");

beforeAll(async () => {
  gw = await startGateway();
  model = await startModelServer();
  everything = await startEverythingServer();
  scripted = await startScriptedMcpServer();
  const llmEnv = { LLM_BASE_URL: model.baseURL, LLM_MODEL: "test-model", PROCESSOR_SUBJECT_FILTER: filterSubject, PROCESSOR_NAME: uniqueName("llm") };
  running.push(await runBuiltProcessor("llm", (deps) => Promise.resolve(buildLlm(deps, { ...process.env, ...llmEnv })), llmEnv));
  // A local server of the processor's own: the reference server in its stdio mode, started by the SDK's transport.
  const localServers = JSON.stringify({ "ev-stdio": { command: process.execPath, args: [join(process.cwd(), "node_modules/@modelcontextprotocol/server-everything/dist/index.js"), "stdio"] } });
  const mcpEnv = { SECRETS_KEYS: TEST_SECRETS_KEYS, MCP_ALLOWED_NETWORKS: "loopback", MCP_LOCAL_SERVERS: localServers, PROCESSOR_SUBJECT_FILTER: filterSubject, PROCESSOR_NAME: mcpName };
  running.push(await runBuiltProcessor("mcp", (deps) => Promise.resolve(buildMcp(deps, { ...process.env, ...mcpEnv })), mcpEnv));
}, 60_000);
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await Promise.allSettled([model.close(), everything.close(), scripted.close(), gw.close()]);
});
beforeEach(() => {
  model.script = [];
  model.fallback = () => ({ chunks: ["done"] });
});

const append = (path: string, body: unknown) => request<EventEnvelope | EventEnvelope[]>(`${gw.url}/streams${path}`, { body });
const say = (path: string, content: string, trigger?: string) => append(path, { type: "agent/input-added", payload: { role: "user", content, ...(trigger === undefined ? {} : { trigger }) } });
const configure = (path: string, servers: unknown[]) => append(path, { type: "agent/mcp-servers-configured", payload: { servers } });

async function until(path: string, predicate: (events: EventEnvelope[]) => boolean, timeoutMs = 20_000, what = `condition on ${path}`): Promise<EventEnvelope[]> {
  return waitFor(async () => {
    const events = await readAll(gw.url, path);
    return predicate(events) ? events : undefined;
  }, timeoutMs, what);
}

type Discovered = { server: string; configuredOffset: number; tools: { name: string; mcpName: string; parameters: unknown }[]; error?: string };
const discoveries = (events: EventEnvelope[]) => events.filter((e) => e.type === "agent/tools-discovered").map((e) => e.payload as Discovered);
type Settled = { callId: string; result?: { content: { type: string; text?: string; data?: string }[]; structuredContent?: unknown }; error?: string };
const settlement = (events: EventEnvelope[], callId: string) => events.find((e) => e.type === "agent/tool-call-settled" && (e.payload as Settled).callId === callId)?.payload as Settled | undefined;
const offeredNames = (req: RecordedRequest) => (req.tools ?? []).map((t) => (t as { function: { name: string } }).function.name);

/** An agent with the given servers whose tools have been listed. */
async function agentWith(name: string, servers: { name: string; url?: string; headers?: Record<string, string> }[]): Promise<{ path: string; events: EventEnvelope[] }> {
  const path = `${root}/${name}`;
  await configure(path, servers);
  const events = await until(path, (e) => discoveries(e).length >= servers.length, 20_000, `tools of ${servers.map((s) => s.name).join(", ")} listed`);
  return { path, events };
}

/** The model asks for one tool call, then answers `done` once it has the result. */
function scriptCall(callId: string, name: string, args: unknown): void {
  model.script = [{ toolCalls: [{ id: callId, name, arguments: JSON.stringify(args) }] }];
}

describe("MCP servers as an agent's tools", () => {
  it("lists the reference server's tools, offers them to the model, and answers get-sum with the sum", async () => {
    const { path, events } = await agentWith("sum", [{ name: "everything", url: everything.url, headers: { "X-Api-Key": "k-123" } }]);
    // The header value and the URL are credentials: sealed in the log, never readable from it.
    const configured = events.find((e) => e.type === "agent/mcp-servers-configured")?.payload as { servers: { url: string; headers: Record<string, string> }[] };
    expect(configured.servers[0]?.url).toMatch(/^sealed:v1:/);
    expect(configured.servers[0]?.headers["X-Api-Key"]).toMatch(/^sealed:v1:/);
    expect(JSON.stringify(events)).not.toContain("k-123");
    const [found] = discoveries(events);
    expect(found?.error).toBeUndefined();
    const names = found?.tools.map((t) => t.name) ?? [];
    expect(names).toEqual(expect.arrayContaining(["everything__get-sum", "everything__echo", "everything__trigger-long-running-operation"]));
    expect(found?.tools.find((t) => t.name === "everything__get-sum")?.mcpName).toBe("get-sum");

    scriptCall("sum-1", "everything__get-sum", { a: 2, b: 3 });
    await say(path, "what is 2 + 3?");
    const done = await until(path, (e) => e.filter((x) => x.type === "agent/llm-request-settled").length >= 2);
    const result = settlement(done, "sum-1")?.result;
    expect(result?.content[0]?.text).toMatch(/\b5\b/);
    // The model was offered the server's tools, and its second request carried the tool's answer.
    const asked = model.requests.filter((r) => r.messages.some((m) => m.content === "what is 2 + 3?"));
    expect(offeredNames(asked[0] as RecordedRequest)).toContain("everything__get-sum");
    expect(asked[1]?.messages.find((m) => m.role === "tool" && m.tool_call_id === "sum-1")?.content).toMatch(/\b5\b/);
  });

  it("turns a long-running tool's progress into ephemeral events, and stores the answer", async () => {
    const { path } = await agentWith("progress", [{ name: "everything", url: everything.url }]);
    const sse = await openSse(`${gw.url}/streams${path}?live=sse`);
    try {
      scriptCall("long-1", "everything__trigger-long-running-operation", { duration: 2, steps: 4 });
      await say(path, "run it");
      const done = await until(path, (e) => settlement(e, "long-1") !== undefined);
      expect(settlement(done, "long-1")?.result?.content[0]?.text).toContain("Long running operation completed");
      const progress = sse.messages
        .filter((m) => m.id === undefined && (m.data as { type?: string }).type === "agent/tool-call-progressed")
        .map((m) => (m.data as { payload: { callId: string; progress: number; total?: number } }).payload);
      expect(progress.map((p) => p.progress)).toEqual([1, 2, 3, 4]);
      expect(progress.every((p) => p.callId === "long-1" && p.total === 4)).toBe(true);
      // Ephemeral: the stored log has none of them.
      expect(done.some((e) => e.type === "agent/tool-call-progressed")).toBe(false);
    } finally {
      sse.abort();
    }
  });

  it("settles a tool's error result as an error the model is sent", async () => {
    const { path } = await agentWith("error", [{ name: "everything", url: everything.url }]);
    scriptCall("bad-1", "everything__get-sum", { a: "two", b: 3 });
    await say(path, "add these");
    const done = await until(path, (e) => e.filter((x) => x.type === "agent/llm-request-settled").length >= 2);
    const settled = settlement(done, "bad-1");
    expect(settled?.result).toBeUndefined();
    // The server's answer with isError (here its input validation), as its text: not a protocol error of ours.
    expect(settled?.error).toMatch(/^MCP error -32602: Input validation error/);
    expect(model.requests.at(-1)?.messages.find((m) => m.tool_call_id === "bad-1")?.content).toMatch(/^error: /);
  });

  it("uses a local stdio server the processor was configured with, named by the agent without a URL", async () => {
    const { path, events } = await agentWith("stdio", [{ name: "ev-stdio" }]);
    expect(discoveries(events)[0]?.tools.map((t) => t.name)).toContain("ev-stdio__get-sum");
    scriptCall("stdio-1", "ev-stdio__get-sum", { a: 40, b: 2 });
    await say(path, "add over stdio");
    const done = await until(path, (e) => settlement(e, "stdio-1") !== undefined);
    expect(settlement(done, "stdio-1")?.result?.content[0]?.text).toMatch(/\b42\b/);
  });

  it("stores an image result as the server gave it", async () => {
    const { path } = await agentWith("image", [{ name: "everything", url: everything.url }]);
    scriptCall("image-1", "everything__get-tiny-image", {});
    await say(path, "show me");
    const done = await until(path, (e) => settlement(e, "image-1") !== undefined);
    const content = settlement(done, "image-1")?.result?.content ?? [];
    expect(content.some((part) => part.type === "image" && (part as { mimeType?: string }).mimeType === "image/png" && (part.data ?? "").length > 0)).toBe(true);
  });

  it("gives a clear error event when the server goes away mid-call", async () => {
    const doomed = await startEverythingServer();
    try {
      const { path } = await agentWith("gone", [{ name: "doomed", url: doomed.url }]);
      const sse = await openSse(`${gw.url}/streams${path}?live=sse`);
      scriptCall("gone-1", "doomed__trigger-long-running-operation", { duration: 30, steps: 30 });
      await say(path, "start the long one");
      await sse.waitFor((m) => m.some((x) => (x.data as { type?: string }).type === "agent/tool-call-progressed"), 15_000);
      sse.abort();
      const killedAt = Date.now();
      doomed.kill();
      const done = await until(path, (e) => settlement(e, "gone-1") !== undefined, 20_000);
      expect(settlement(done, "gone-1")?.error).toMatch(/MCP server "doomed"/);
      // Not the tool timeout (300 s): the processor gave up on the connection within seconds.
      expect(Date.now() - killedAt).toBeLessThan(15_000);
    } finally {
      await doomed.close();
    }
  });

  it("picks up a server's tool list changing while connected, and offers the new tool", async () => {
    const { path } = await agentWith("changing", [{ name: "scripted", url: scripted.url }]);
    const toolName = `extra-${Date.now()}`;
    scriptCall("add-1", "scripted__add-tool", { name: toolName });
    await say(path, "add a tool");
    const changed = await until(path, (e) => discoveries(e).some((d) => d.tools.some((t) => t.mcpName === toolName)), 20_000, "the new tool listed");
    expect(discoveries(changed).length).toBeGreaterThanOrEqual(2);
    // The next request offers it, and a call to it reaches the server.
    scriptCall("extra-1", `scripted__${toolName}`, {});
    await say(path, "use the new tool");
    await until(path, (e) => settlement(e, "extra-1") !== undefined);
    expect(offeredNames(model.requests.filter((r) => r.messages.some((m) => m.content === "use the new tool"))[0] as RecordedRequest)).toContain(`scripted__${toolName}`);
    expect(scripted.calls[toolName]).toBe(1);
  });

  it("never calls a tool twice for a request whose result is stored, even when the processor is rewound", async () => {
    const { path } = await agentWith("once", [{ name: "scripted", url: scripted.url }]);
    const before = scripted.calls.count ?? 0;
    scriptCall("once-1", "scripted__count", { label: "once" });
    await say(path, "count once");
    const done = await until(path, (e) => settlement(e, "once-1") !== undefined && e.filter((x) => x.type === "agent/llm-request-settled").length >= 2);
    expect(settlement(done, "once-1")?.result?.structuredContent).toEqual({ calls: before + 1 });
    const last = done.at(-1)?.offset ?? 0;
    // Every event of the stream is delivered to the mcp processor again.
    const rewound = await request(`${gw.url}/processors/${mcpName}/rewind`, { body: { to: done[0]?.offset ?? 1 } });
    expect(rewound.status).toBe(200);
    await waitForSettledProcessor(gw.nats, mcpName, last, 30_000);
    expect(scripted.calls.count).toBe(before + 1);
  });

  it("calls nothing and settles nothing more for a call already settled by someone else when its request is handled", async () => {
    const { path } = await agentWith("settled", [{ name: "scripted", url: scripted.url }]);
    const before = scripted.calls.count ?? 0;
    // The request and another owner's settlement stored together: by the time the mcp processor decides, the call is closed.
    const stored = (await append(path, [
      { type: "agent/tool-call-requested", payload: { requestOffset: 1, callId: "elsewhere-1", name: "scripted__count", arguments: "{}" } },
      { type: "agent/tool-call-settled", payload: { callId: "elsewhere-1", result: "answered by another owner" } },
    ])).body as EventEnvelope[];
    await waitForSettledProcessor(gw.nats, mcpName, stored.at(-1)?.offset ?? 0, 30_000);
    expect(scripted.calls.count ?? 0).toBe(before);
    const events = await readAll(gw.url, path);
    expect(events.filter((e) => e.type === "agent/tool-call-settled")).toHaveLength(1);
  });

  it("cancels a running call when an input interrupts the agent, and tells the server", async () => {
    const { path } = await agentWith("interrupt", [{ name: "scripted", url: scripted.url }]);
    scriptCall("wait-1", "scripted__wait", { label: "wait-1" });
    await say(path, "wait for it");
    await until(path, (e) => e.some((x) => x.type === "agent/tool-call-requested"));
    await waitFor(() => Promise.resolve((scripted.calls.wait ?? 0) > 0 ? true : undefined), 10_000, "the call to reach the server");
    await say(path, "stop, do something else", "interrupt");
    const done = await until(path, (e) => settlement(e, "wait-1") !== undefined);
    expect(settlement(done, "wait-1")?.error).toMatch(/cancelled/);
    await waitFor(() => Promise.resolve(scripted.cancelled.includes("wait-1") ? true : undefined), 10_000, "the server told of the cancellation");
  });

  it("carries the servers into a fork: their sealed headers open there, and an inherited open call is made in the fork", async () => {
    const { path } = await agentWith("forked", [{ name: "scripted", url: scripted.url, headers: { "X-Api-Key": "fork-key" } }]);
    // A call requested in the source and never settled there (no mcp processor sees this subtree's copy of it yet).
    scriptCall("inherited-1", "scripted__count", { label: "inherited" });
    const countedBefore = scripted.calls.count ?? 0;
    await say(path, "count in the fork");
    const source = await until(path, (e) => settlement(e, "inherited-1") !== undefined);
    const requested = source.find((e) => e.type === "agent/tool-call-requested");
    const at = requested?.offset ?? 0;
    const fork = `${root}/forked-copy`;
    const forked = await request(`${gw.url}/streams${path}/fork`, { body: { at, to: fork } });
    expect(forked.status).toBe(201);
    // In the fork the call is open (its settlement came after `at`): the mcp processor makes it there, with the
    // header opened for the fork's path.
    const events = await until(fork, (e) => settlement(e, "inherited-1") !== undefined);
    expect(settlement(events, "inherited-1")?.result?.content[0]?.text).toBe("counted inherited");
    expect(scripted.calls.count).toBe(countedBefore + 2);
    expect(scripted.lastHeaders["x-api-key"]).toBe("fork-key");
  });

  it("lists a server that was down when configured again at the agent's next input", async () => {
    const port = await freePort();
    const { path, events } = await agentWith("late", [{ name: "late", url: `http://127.0.0.1:${port}/mcp` }]);
    expect(discoveries(events)[0]?.error).toMatch(/could not list the tools of the MCP server "late"/);
    const late = await startScriptedMcpServer(port);
    try {
      await say(path, "are your tools there now?");
      const listed = await until(path, (e) => discoveries(e).some((d) => d.error === undefined && d.tools.some((t) => t.name === "late__count")));
      expect(discoveries(listed).filter((d) => d.error !== undefined)).toHaveLength(1);
    } finally {
      await late.close();
    }
  });

  it("refuses a server on a network the processor may not reach, and a local server it does not have", async () => {
    const { events } = await agentWith("refused", [{ name: "private", url: "http://10.0.0.1:9/mcp" }, { name: "nolocal" }]);
    const found = discoveries(events);
    expect(found.find((d) => d.server === "private")?.error).toMatch(/refused: .*private address.*MCP_ALLOWED_NETWORKS/);
    expect(found.find((d) => d.server === "nolocal")?.error).toMatch(/no local MCP server named "nolocal"/);
  });

  it("refuses a host name that resolves to a loopback address unless MCP_ALLOWED_NETWORKS allows it", async () => {
    const strictRoot = uniquePath("mcp-strict");
    const env = { SECRETS_KEYS: TEST_SECRETS_KEYS, MCP_ALLOWED_NETWORKS: "", PROCESSOR_SUBJECT_FILTER: `${eventsSubject(parseStreamPath(strictRoot))}.>`, PROCESSOR_NAME: uniqueName("mcp-strict") };
    const strict = await runBuiltProcessor("mcp", (deps) => Promise.resolve(buildMcp(deps, { ...process.env, ...env })), env);
    try {
      const path = `${strictRoot}/agent`;
      const before = scripted.calls.count ?? 0;
      await configure(path, [{ name: "local", url: scripted.url.replace("127.0.0.1", "localhost") }]);
      const events = await until(path, (e) => discoveries(e).length >= 1);
      expect(discoveries(events)[0]?.error).toMatch(/refused: localhost resolves to \S+ is a loopback address \(allow it with MCP_ALLOWED_NETWORKS=loopback\)/);
      expect(scripted.calls.count ?? 0).toBe(before);
    } finally {
      await strict.stop();
    }
  });

  it("checks the configuration at the gateway: valid URLs, unique names (admin-only: the authorization matrix)", async () => {
    const path = `${root}/invalid`;
    const bad = await request<{ error: { code: string; message: string } }>(`${gw.url}/streams${path}`, { body: { type: "agent/mcp-servers-configured", payload: { servers: [{ name: "a", url: "ftp://x" }] } } });
    expect(bad.body.error.code).toBe("INVALID_EVENT");
    const dup = await request<{ error: { code: string } }>(`${gw.url}/streams${path}`, { body: { type: "agent/mcp-servers-configured", payload: { servers: [{ name: "a", url: "http://a.example/mcp" }, { name: "a", url: "http://b.example/mcp" }] } } });
    expect(dup.body.error.code).toBe("INVALID_EVENT");
  });
});
