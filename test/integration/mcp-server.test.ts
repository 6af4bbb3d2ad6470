import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { Subscription, SubscriptionOptions } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { buildLlm } from "../../processors/llm/service.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { runBuiltProcessor, runProcessor, toolOwner, uniqueName, waitFor } from "../support/processors.js";
import { bearer, JWT_SECRET, mintToken, readAllAs } from "../support/security.js";

/**
 * Every agent is an MCP server (issue 16): the SDK's own client against a real gateway (AUTH=jwt), NATS and llm
 * processor, with a scripted model.
 */

let gw: TestGateway;
let model: ModelServer;
const running: RunningProcessor[] = [];
const clients: Client[] = [];
const root = uniquePath("mcp");
const filterSubject = `${eventsSubject(parseStreamPath(root))}.>`;
let owner = "";
let reader = "";

beforeAll(async () => {
  gw = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET });
  model = await startModelServer();
  const env = { LLM_BASE_URL: model.baseURL, LLM_MODEL: "test-model", LLM_MAX_RETRIES: "0", PROCESSOR_SUBJECT_FILTER: filterSubject };
  running.push(await runBuiltProcessor("llm", (deps) => Promise.resolve(buildLlm(deps, { ...process.env, ...env })), { ...env, PROCESSOR_NAME: uniqueName("llm") }));
  owner = await mintToken([{ path: `${root}/**`, rights: ["read", "append", "admin"] }], { subject: "owner" });
  reader = await mintToken([{ path: `${root}/**`, rights: ["read"] }], { subject: "reader" });
});
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await model.close();
  await gw.close();
});
beforeEach(() => {
  model.script = [];
  model.fallback = () => ({ chunks: ["ok"] });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

function transportFor(path: string, token: string | null): StreamableHTTPClientTransport {
  return new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp${path}`), token === null ? {} : { requestInit: { headers: bearer(token) } });
}

async function connect(path: string, token: string | null = owner): Promise<Client> {
  const client = new Client({ name: "mcp-server-test", version: "1.0.0" });
  await client.connect(transportFor(path, token));
  clients.push(client);
  return client;
}

const text = (result: CallToolResult): string => result.content.map((c) => (c.type === "text" ? c.text : "")).join("");
const call = async (client: Client, name: string, args: Record<string, unknown> = {}, options: { onprogress?: () => void } = {}): Promise<CallToolResult> => (await client.callTool({ name, arguments: args }, undefined, options)) as CallToolResult;
const appendAs = (token: string, path: string, body: unknown) => request<EventEnvelope>(`${gw.url}/streams${path}`, { body, headers: bearer(token) });
const types = (events: EventEnvelope[]) => events.map((e) => e.type);

describe("an agent as an MCP server", () => {
  it("lists its tools, answers ask with the model's answer, and shows the turn in read-events", async () => {
    const path = `${root}/plain`;
    const client = await connect(path);
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(["ask", "list-streams", "read-events"]);

    model.script = [{ chunks: ["Hel", "lo from ", "the agent"] }];
    const answer = await call(client, "ask", { message: "hi there" });
    expect(answer.isError, text(answer)).toBeFalsy();
    const structured = answer.structuredContent as { text: string; inputOffset: number; requestOffset: number; settledOffset: number };
    expect(structured.text).toBe("Hello from the agent");
    expect(JSON.parse(text(answer))).toEqual(structured);
    expect(model.requests.at(-1)?.messages).toEqual([{ role: "user", content: "hi there" }]);

    const log = await readAllAs(gw.url, path, owner);
    expect(types(log)).toEqual(["agent/input-added", "agent/llm-request-started", "agent/llm-request-settled"]);
    expect(log.map((e) => e.offset)).toEqual([structured.inputOffset, structured.requestOffset, structured.settledOffset]);

    const recent = await call(client, "read-events", { limit: 2 });
    expect(recent.isError, text(recent)).toBeFalsy();
    const page = recent.structuredContent as { events: EventEnvelope[]; nextOffset: number; upToDate: boolean };
    expect(types(page.events)).toEqual(["agent/llm-request-started", "agent/llm-request-settled"]);
    expect(page.nextOffset).toBe(structured.settledOffset);
    expect(JSON.parse(text(recent))).toEqual(page);
    const all = (await call(client, "read-events")).structuredContent as { events: EventEnvelope[] };
    expect(all.events[0]).toMatchObject({ type: "agent/input-added", payload: { role: "user", content: "hi there" } });
    expect(all.events[2]?.payload).toMatchObject({ requestOffset: structured.requestOffset, result: { status: "succeeded", text: "Hello from the agent" } });
    const after = (await call(client, "read-events", { after: structured.inputOffset, limit: 1 })).structuredContent as { events: EventEnvelope[]; upToDate: boolean };
    expect(types(after.events)).toEqual(["agent/llm-request-started"]);
    expect(after.upToDate).toBe(false);
  });

  it("follows a tool round to the final answer, with progress notifications on the way", async () => {
    const path = `${root}/tools`;
    running.push(await runProcessor(toolOwner(uniqueName("tools"), filterSubject, (call) => {
      if (call.name !== "add") return undefined;
      const args = JSON.parse(call.arguments || "{}") as Record<string, number>;
      return { sum: (args.a ?? 0) + (args.b ?? 0) };
    })));
    expect((await appendAs(owner, path, { type: "agent/configured", payload: { tools: [{ name: "add", parameters: { type: "object", properties: { a: { type: "number" }, b: { type: "number" } } } }] } })).status).toBe(201);
    model.script = [{ toolCalls: [{ id: "call_1", name: "add", arguments: '{"a":2,"b":3}' }] }, { chunks: ["2+3=5"] }];
    const client = await connect(path);
    let progress = 0;
    const answer = await call(client, "ask", { message: "add 2 and 3" }, {
      onprogress: () => {
        progress += 1;
      },
    });
    expect(answer.isError, text(answer)).toBeFalsy();
    expect((answer.structuredContent as { text: string }).text).toBe("2+3=5");
    // request started, settled with a call, the call, its timeout schedule, its settlement, the second request...
    expect(progress).toBeGreaterThanOrEqual(5);
    const log = await readAllAs(gw.url, path, owner);
    expect(types(log).filter((t) => t.startsWith("agent/llm-request-settled") || t.startsWith("agent/tool-call"))).toEqual(["agent/llm-request-settled", "agent/tool-call-requested", "agent/tool-call-settled", "agent/llm-request-settled"]);
  });

  it("answers a failed model request with an error result", async () => {
    const client = await connect(`${root}/failing`);
    model.script = [{ status: 400 }];
    const answer = await call(client, "ask", { message: "this fails" });
    expect(answer.isError).toBe(true);
    expect(text(answer)).toMatch(/model request failed/);
    expect(answer.structuredContent).toBeUndefined();
  });

  it("lists the streams under the agent that the token may read", async () => {
    const path = `${root}/parent`;
    for (const stream of [path, `${path}/child-a`, `${path}/child-b/grandchild`, `${root}/parent-sibling`]) expect((await appendAs(owner, stream, { type: "note" })).status).toBe(201);
    const client = await connect(path);
    const listed = await call(client, "list-streams");
    expect(listed.isError, text(listed)).toBeFalsy();
    const body = listed.structuredContent as { streams: { path: string; eventCount: number; paused: boolean }[]; nextCursor?: string };
    expect(body.streams.map((s) => s.path)).toEqual([path, `${path}/child-a`, `${path}/child-b/grandchild`]);
    expect(body.streams.every((s) => s.eventCount === 1 && !s.paused)).toBe(true);
    const first = (await call(client, "list-streams", { limit: 1 })).structuredContent as { streams: { path: string }[]; nextCursor?: string };
    expect(first.nextCursor).toBe(path);
    const second = (await call(client, "list-streams", { limit: 1, cursor: first.nextCursor })).structuredContent as { streams: { path: string }[] };
    expect(second.streams.map((s) => s.path)).toEqual([`${path}/child-a`]);

    // A token that may read the parent alone sees no child.
    const parentOnly = await mintToken([{ path, rights: ["read"] }], { subject: "parent-only" });
    const narrow = (await call(await connect(path, parentOnly), "list-streams")).structuredContent as { streams: { path: string }[] };
    expect(narrow.streams.map((s) => s.path)).toEqual([path]);
  });

  it("refuses without a token (401), without read on the path (403), and ask without append (FORBIDDEN, nothing stored)", async () => {
    const path = `${root}/guarded`;
    expect((await appendAs(owner, path, { type: "note" })).status).toBe(201);

    await expect(connect(path, null)).rejects.toMatchObject({ code: 401, message: expect.stringContaining("UNAUTHENTICATED") as unknown });
    const raw = await fetch(`${gw.url}/mcp${path}`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }) });
    expect(raw.status).toBe(401);
    expect(raw.headers.get("www-authenticate")).toContain("Bearer");
    expect(((await raw.json()) as { error: { code: string } }).error.code).toBe("UNAUTHENTICATED");

    const elsewhere = await mintToken([{ path: "/elsewhere/**", rights: ["read", "append", "admin"] }], { subject: "elsewhere" });
    await expect(connect(path, elsewhere)).rejects.toMatchObject({ code: 403, message: expect.stringContaining("FORBIDDEN") as unknown });
    const appendOnly = await mintToken([{ path: `${root}/**`, rights: ["append"] }], { subject: "append-only" });
    await expect(connect(path, appendOnly)).rejects.toMatchObject({ code: 403 });

    const before = await readAllAs(gw.url, path, owner);
    const client = await connect(path, reader);
    const refused = await call(client, "ask", { message: "let me in" });
    expect(refused.isError).toBe(true);
    expect(text(refused)).toMatch(/^FORBIDDEN: /);
    expect(await readAllAs(gw.url, path, owner)).toEqual(before);
    // What read allows still works.
    expect((await call(client, "read-events")).isError).toBeFalsy();
  });

  it("answers an error result when the agent is paused, before or while it works", async () => {
    const paused = `${root}/paused-before`;
    expect((await appendAs(owner, paused, { type: "stream/paused", payload: { reason: "maintenance" } })).status).toBe(201);
    const before = await readAllAs(gw.url, paused, owner);
    const refused = await call(await connect(paused), "ask", { message: "anyone there?" });
    expect(refused.isError).toBe(true);
    expect(text(refused)).toMatch(/^STREAM_PAUSED: /);
    expect(await readAllAs(gw.url, paused, owner)).toEqual(before);

    const path = `${root}/paused-while`;
    model.script = [{ chunks: ["slow", " answer", " that", " never", " comes"], chunkDelayMs: 500 }];
    const asking = call(await connect(path), "ask", { message: "take your time" });
    await waitFor(async () => ((await readAllAs(gw.url, path, owner)).some((e) => e.type === "agent/llm-request-started") ? true : undefined), 10_000, "the request to start");
    expect((await appendAs(owner, path, { type: "agent/paused", payload: { reason: "a person stopped it" } })).status).toBe(201);
    const answer = await asking;
    expect(answer.isError).toBe(true);
    expect(text(answer)).toMatch(/^STREAM_PAUSED: The agent was paused \(agent\/paused: a person stopped it\)/);
  });

  it("gives up after the timeout, saying so", async () => {
    const path = `${root}/slow`;
    model.script = [{ chunks: ["too", " late"], chunkDelayMs: 2_000 }];
    const answer = await call(await connect(path), "ask", { message: "quick!", timeoutSeconds: 1 });
    expect(answer.isError).toBe(true);
    expect(text(answer)).toMatch(/did not answer within 1 s/);
  });

  it("stops following the stream when the client goes away", async () => {
    const path = `${root}/leaving`;
    // Slower than the wait below: the follower must stop because the client left, not because the answer came.
    model.script = [{ chunks: ["never", " read"], chunkDelayMs: 5_000 }];
    const followers: Subscription[] = [];
    const subscribe = gw.nats.nc.subscribe.bind(gw.nats.nc);
    gw.nats.nc.subscribe = (subject: string, options?: SubscriptionOptions) => {
      const subscription = subscribe(subject, options);
      if (subject === eventsSubject(parseStreamPath(path))) followers.push(subscription);
      return subscription;
    };
    try {
      const client = await connect(path);
      const asking = call(client, "ask", { message: "never mind" }).catch((err: unknown) => err);
      const follower = await waitFor(() => Promise.resolve(followers[0]), 10_000, "the follower");
      expect(follower.isClosed()).toBe(false);
      await client.close();
      await asking;
      await waitFor(() => Promise.resolve(follower.isClosed() ? true : undefined), 2_000, "the follower to stop");
    } finally {
      gw.nats.nc.subscribe = subscribe;
    }
  });

  it("answers GET with 405 (stateless: no stream of its own), after the same authorization", async () => {
    const path = `${root}/get`;
    expect((await fetch(`${gw.url}/mcp${path}`, { headers: { accept: "text/event-stream" } })).status).toBe(401);
    const reply = await fetch(`${gw.url}/mcp${path}`, { headers: { accept: "text/event-stream", ...bearer(reader) } });
    expect(reply.status).toBe(405);
    expect(reply.headers.get("allow")).toBe("POST");
  });
});
