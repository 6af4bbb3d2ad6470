import { readdirSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { CONSOLE_DIST } from "../../gateway/routes/console.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Grant } from "../../gateway/auth/grants.js";
import { AdminEventTypes } from "../../shared/contract/wire.js";
import type { Right } from "../../shared/log/writer.js";
import { request, startGateway, type TestGateway } from "../support/gateway.js";

/**
 * Every route and face of the gateway × every kind of caller, generated from
 * the tables below. Each refusal is followed by reading the log back: nothing
 * may have been stored. A route the gateway serves that no table names fails
 * the test, so a new route cannot ship without its rule.
 */

const secret = "an-authorization-matrix-secret-of-40-chars";
const root = `/authz-${Date.now().toString(36)}`;

type Caller = "none" | "elsewhere" | "read" | "append" | "admin" | "owner";
const CALLERS: Record<Caller, Grant[] | null> = {
  none: null,
  elsewhere: [{ path: "/elsewhere/**", rights: ["read", "append", "admin"] }],
  read: [{ path: `${root}/**`, rights: ["read"] }],
  append: [{ path: `${root}/**`, rights: ["append"] }],
  admin: [{ path: `${root}/**`, rights: ["admin"] }],
  owner: [{ path: `${root}/**`, rights: ["read", "append", "admin"] }],
};

/** A file of the built console (test/support/global-setup.ts builds it before any gateway starts). */
function consoleAsset(): string {
  const asset = readdirSync(join(CONSOLE_DIST, "assets")).find((name) => name.endsWith(".js"));
  if (asset === undefined) throw new Error(`the console is not built in ${CONSOLE_DIST}`);
  return asset;
}

let gw: TestGateway;
const tokens = new Map<Caller, string>();
let ownerToken = "";

function mint(grants: Grant[], subject: string): Promise<string> {
  return new SignJWT({ streams: grants }).setProtectedHeader({ alg: "HS256" }).setSubject(subject).setIssuedAt().setExpirationTime("10m").sign(new TextEncoder().encode(secret));
}

beforeAll(async () => {
  gw = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: secret, DURABLE_LONG_POLL_TIMEOUT_MS: "200", DURABLE_SUBSCRIPTIONS: "on" });
  for (const [caller, grants] of Object.entries(CALLERS) as [Caller, Grant[] | null][]) if (grants !== null) tokens.set(caller, await mint(grants, caller));
  ownerToken = tokens.get("owner") ?? "";
});
afterAll(async () => {
  await gw.close();
});

interface Sent {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: string;
}

interface Case {
  /** The route it exercises, as the gateway names it (`METHOD url`). */
  route: string;
  name: string;
  /** Every right the caller needs on the streams under the test root; `public` needs no token, `token` any valid one. */
  needs: Right[] | "public" | "token" | "admin-everywhere";
  /** Run with the owner's token before the request, on the case's own stream. */
  setup?: (path: string) => Promise<void>;
  send: (path: string, auth: Record<string, string>) => Sent;
  /** What a refusal must leave as it was (default: the stream's events and its Durable Streams state). */
  watched?: (path: string) => string[];
  /** Extra checks on an allowed answer. */
  allowed?: (reply: Reply, caller: Caller) => void;
  /** The status an allowed caller gets when it is not a success (MCP's GET: 405, after the same authorization). */
  allowedStatus?: number;
}

interface Reply {
  status: number;
  body: string;
}

const owner = (): Record<string, string> => ({ authorization: `Bearer ${ownerToken}` });
const json = { "content-type": "application/json" };
const event = (type: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ type, payload: payloadFor(type), ...extra });

/** Payloads valid for the admin-only types, so that an allowed append really stores them. */
function payloadFor(type: string): unknown {
  switch (type) {
    case "stream/paused":
    case "agent/paused":
      return { reason: "matrix" };
    case "stream/circuit-breaker-configured":
      return { maxEventsPerSecond: 50, burst: 50 };
    case "webhook/inbound-configured":
      return { secret: `whsec_${Buffer.from("matrix-secret-24-bytes!!").toString("base64")}` };
    case "subscription/configured":
      return { slug: "s", url: "https://example.invalid/hook", secret: `whsec_${Buffer.from("matrix-secret-24-bytes!!").toString("base64")}` };
    case "schedule/added":
      return { slug: "s", append: { type: "tick" }, schedule: { kind: "in", seconds: 3600 } };
    case "agent/budget-configured":
      return { maxTokens: 1000 };
    case "agent/mcp-servers-configured":
      return { servers: [{ name: "m", url: "https://example.invalid/mcp", headers: { "X-Api-Key": "k" } }] };
    default:
      return { slug: "s" };
  }
}

async function appendAsOwner(path: string, body: unknown): Promise<void> {
  const reply = await request(`${gw.url}/streams${path}`, { body, headers: owner() });
  if (reply.status !== 201) throw new Error(`setup append to ${path}: ${reply.status} ${JSON.stringify(reply.body)}`);
}

/** A stream to fork, and the offset of its event to fork at. */
const forkPoints = new Map<string, number>();
async function forkable(path: string): Promise<void> {
  const reply = await request<{ offset: number }>(`${gw.url}/streams${path}`, { body: event("note"), headers: owner() });
  if (reply.status !== 201) throw new Error(`setup append to ${path}: ${reply.status}`);
  forkPoints.set(path, reply.body.offset);
}

async function createDurable(path: string): Promise<void> {
  const reply = await fetch(`${gw.url}/v1/stream${path}`, { method: "PUT", headers: { ...owner(), "content-type": "text/plain" }, body: "first" });
  if (reply.status !== 201) throw new Error(`setup create ${path}: ${reply.status}`);
}

const adminTypes = [...AdminEventTypes];

/** The event API (`/streams`). */
const eventApiCases: Case[] = [
  { route: "POST /streams/*", name: "append an event", needs: ["append"], send: (p, a) => ({ method: "POST", url: `/streams${p}`, headers: { ...a, ...json }, body: JSON.stringify(event("note")) }) },
  ...adminTypes.map((type): Case => ({
    route: "POST /streams/*",
    name: `append ${type} alone`,
    needs: ["admin"],
    send: (p, a) => ({ method: "POST", url: `/streams${p}`, headers: { ...a, ...json }, body: JSON.stringify(event(type)) }),
  })),
  ...adminTypes.map((type): Case => ({
    route: "POST /streams/*",
    name: `append ${type} inside a batch`,
    needs: ["append", "admin"],
    send: (p, a) => ({ method: "POST", url: `/streams${p}`, headers: { ...a, ...json }, body: JSON.stringify([event("note"), event(type)]) }),
  })),
  {
    route: "POST /streams/*",
    name: "fork a stream (read on it, append on the fork)",
    needs: ["read", "append"],
    setup: forkable,
    send: (p, a) => ({ method: "POST", url: `/streams${p}/fork`, headers: { ...a, ...json }, body: JSON.stringify({ at: forkPoints.get(p), to: `${p}-fork` }) }),
    watched: (p) => [p, `${p}-fork`],
  },
  {
    route: "POST /streams/*",
    name: "fork a stream with its webhook subscriptions (admin on the fork too)",
    needs: ["read", "append", "admin"],
    setup: forkable,
    send: (p, a) => ({ method: "POST", url: `/streams${p}/fork`, headers: { ...a, ...json }, body: JSON.stringify({ at: forkPoints.get(p), to: `${p}-fork`, subscriptions: true }) }),
    watched: (p) => [p, `${p}-fork`],
  },
  // A processor recognises its earlier reactions by `source`: a forged one would make it skip an event.
  {
    route: "POST /streams/*",
    name: "append an event naming a processor as its source",
    needs: ["admin"],
    send: (p, a) => ({ method: "POST", url: `/streams${p}`, headers: { ...a, ...json }, body: JSON.stringify(event("note", { source: { processor: "llm", causationOffset: 1 } })) }),
  },
  { route: "POST /streams/*", name: "append an ephemeral event", needs: ["append"], send: (p, a) => ({ method: "POST", url: `/streams${p}?ephemeral=true`, headers: { ...a, ...json }, body: JSON.stringify(event("token")) }) },
  { route: "POST /streams/*", name: "append an ephemeral admin-only event", needs: ["admin"], send: (p, a) => ({ method: "POST", url: `/streams${p}?ephemeral=true`, headers: { ...a, ...json }, body: JSON.stringify(event("stream/paused")) }) },
  {
    route: "POST /streams/*",
    name: "resume a paused stream",
    needs: ["admin"],
    setup: (p) => appendAsOwner(p, event("stream/paused")),
    send: (p, a) => ({ method: "POST", url: `/streams${p}/resume`, headers: { ...a, ...json }, body: "{}" }),
  },
  {
    route: "POST /streams/*",
    name: "replay another writer's idempotency key",
    needs: ["append"],
    setup: (p) => appendAsOwner(p, { type: "note", payload: { private: "only-readers-see-this" }, idempotencyKey: "k1" }),
    send: (p, a) => ({ method: "POST", url: `/streams${p}`, headers: { ...a, ...json }, body: JSON.stringify({ type: "probe", idempotencyKey: "k1" }) }),
    allowed: (reply, caller) => {
      if (!CALLERS[caller]?.some((g) => g.rights.includes("read"))) expect(reply.body).not.toContain("only-readers-see-this");
    },
  },
  { route: "GET /streams/*", name: "read a page", needs: ["read"], setup: (p) => appendAsOwner(p, event("note")), send: (p, a) => ({ method: "GET", url: `/streams${p}`, headers: a }) },
  { route: "HEAD /streams/*", name: "read a page's headers", needs: ["read"], setup: (p) => appendAsOwner(p, event("note")), send: (p, a) => ({ method: "HEAD", url: `/streams${p}`, headers: a }) },
  { route: "GET /streams/*", name: "tail a stream live (SSE)", needs: ["read"], setup: (p) => appendAsOwner(p, event("note")), send: (p, a) => ({ method: "GET", url: `/streams${p}?live=sse`, headers: a }) },
  {
    route: "GET /streams/*",
    name: "tail a stream live with ?access_token",
    needs: ["read"],
    setup: (p) => appendAsOwner(p, event("note")),
    send: (p, a) => ({ method: "GET", url: `/streams${p}?live=sse${a.authorization === undefined ? "" : `&access_token=${a.authorization.slice("Bearer ".length)}`}` }),
  },
  { route: "GET /streams/*", name: "read a subtree", needs: ["read"], setup: (p) => appendAsOwner(`${p}/child`, event("note")), send: (p, a) => ({ method: "GET", url: `/streams${p}/**`, headers: a }) },
  { route: "GET /streams/*", name: "tail a subtree live", needs: ["read"], setup: (p) => appendAsOwner(`${p}/child`, event("note")), send: (p, a) => ({ method: "GET", url: `/streams${p}/**?live=sse`, headers: a }) },
  {
    route: "GET /streams",
    name: "list streams (only what the token may read, cursor included)",
    needs: "token",
    setup: async (p) => {
      await appendAsOwner(p, event("note"));
      await appendAsOwner(`${p}/secret-name`, event("note"));
    },
    send: (p, a) => ({ method: "GET", url: `/streams?prefix=${p}&limit=1`, headers: a }),
    allowed: (reply, caller) => {
      const page = JSON.parse(reply.body) as { streams: unknown[]; nextCursor?: string };
      const mayRead = CALLERS[caller]?.some((g) => g.path === `${root}/**` && g.rights.includes("read")) === true;
      expect(page.streams.length > 0, `${caller} sees ${page.streams.length} streams`).toBe(mayRead);
      // The cursor is a path: it must not name a stream the caller may not read.
      if (!mayRead) expect(page.nextCursor).toBeUndefined();
    },
  },
  { route: "HEAD /streams", name: "list streams' headers", needs: "token", send: (p, a) => ({ method: "HEAD", url: `/streams?prefix=${p}`, headers: a }) },
  {
    route: "GET /streams/*",
    name: "each processor's state of a stream at an offset",
    needs: ["read"],
    setup: (p) => appendAsOwner(p, event("note")),
    send: (p, a) => ({ method: "GET", url: `/streams${p}/state?at=1000000`, headers: a }),
  },
  { route: "HEAD /streams/*", name: "a stream's state headers", needs: ["read"], setup: (p) => appendAsOwner(p, event("note")), send: (p, a) => ({ method: "HEAD", url: `/streams${p}/state`, headers: a }) },
  { route: "GET /me", name: "who the token is", needs: "token", send: (_p, a) => ({ method: "GET", url: "/me", headers: a }) },
  { route: "HEAD /me", name: "who the token is (headers)", needs: "token", send: (_p, a) => ({ method: "HEAD", url: "/me", headers: a }) },
  // Every processor's consumer, across all streams: only admin on every stream (/**), which no caller here has.
  { route: "GET /processors", name: "the processors' consumers", needs: "admin-everywhere", send: (_p, a) => ({ method: "GET", url: "/processors", headers: a }) },
  { route: "HEAD /processors", name: "the processors' consumers (headers)", needs: "admin-everywhere", send: (_p, a) => ({ method: "HEAD", url: "/processors", headers: a }) },
  // A processor no test has: an allowed caller would get 404, so a refusal is never mistaken for a rewind.
  {
    route: "POST /processors/:name/rewind",
    name: "rewind a processor",
    needs: "admin-everywhere",
    send: (_p, a) => ({ method: "POST", url: "/processors/authz-nobody/rewind", headers: { ...a, "content-type": "application/json" }, body: JSON.stringify({ to: 1 }) }),
  },
];

/** The Durable Streams face (`/v1/stream`). */
const durableCases: Case[] = [
  { route: "PUT /v1/stream/*", name: "create a Durable Stream", needs: ["append"], send: (p, a) => ({ method: "PUT", url: `/v1/stream${p}`, headers: { ...a, "content-type": "text/plain" }, body: "hello" }) },
  {
    route: "PUT /v1/stream/*",
    name: "fork a stream (needs read on its source)",
    needs: ["append", "read"],
    setup: (p) => appendAsOwner(`${p}/source`, event("note", { payload: { private: "source-only" } })),
    send: (p, a) => ({ method: "PUT", url: `/v1/stream${p}/forked`, headers: { ...a, "content-type": "application/json", "stream-forked-from": `${p}/source` } }),
    watched: (p) => [`${p}/forked`],
  },
  { route: "POST /v1/stream/*", name: "append data to a Durable Stream", needs: ["append"], setup: createDurable, send: (p, a) => ({ method: "POST", url: `/v1/stream${p}`, headers: { ...a, "content-type": "text/plain" }, body: "more" }) },
  {
    route: "POST /v1/stream/*",
    name: "append data with a producer",
    needs: ["append"],
    setup: createDurable,
    send: (p, a) => ({ method: "POST", url: `/v1/stream${p}`, headers: { ...a, "content-type": "text/plain", "producer-id": "p", "producer-epoch": "0", "producer-seq": "0" }, body: "more" }),
  },
  { route: "POST /v1/stream/*", name: "append an event to an agent stream", needs: ["append"], setup: (p) => appendAsOwner(p, event("note")), send: (p, a) => ({ method: "POST", url: `/v1/stream${p}`, headers: { ...a, ...json }, body: JSON.stringify(event("note")) }) },
  ...adminTypes.map((type): Case => ({
    route: "POST /v1/stream/*",
    name: `append ${type} to an agent stream`,
    needs: ["admin"],
    setup: (p) => appendAsOwner(p, event("note")),
    send: (p, a) => ({ method: "POST", url: `/v1/stream${p}`, headers: { ...a, ...json }, body: JSON.stringify(event(type)) }),
  })),
  ...adminTypes.map((type): Case => ({
    route: "POST /v1/stream/*",
    name: `append ${type} inside a batch to an agent stream`,
    needs: ["append", "admin"],
    setup: (p) => appendAsOwner(p, event("note")),
    send: (p, a) => ({ method: "POST", url: `/v1/stream${p}`, headers: { ...a, ...json }, body: JSON.stringify([event("note"), event(type)]) }),
  })),
  { route: "GET /v1/stream/*", name: "read a Durable Stream", needs: ["read"], setup: createDurable, send: (p, a) => ({ method: "GET", url: `/v1/stream${p}?offset=-1`, headers: a }) },
  { route: "GET /v1/stream/*", name: "read an agent stream through the protocol", needs: ["read"], setup: (p) => appendAsOwner(p, event("note")), send: (p, a) => ({ method: "GET", url: `/v1/stream${p}?offset=-1`, headers: a }) },
  { route: "GET /v1/stream/*", name: "long-poll a Durable Stream", needs: ["read"], setup: createDurable, send: (p, a) => ({ method: "GET", url: `/v1/stream${p}?offset=now&live=long-poll`, headers: a }) },
  { route: "GET /v1/stream/*", name: "tail a Durable Stream (SSE)", needs: ["read"], setup: createDurable, send: (p, a) => ({ method: "GET", url: `/v1/stream${p}?offset=-1&live=sse`, headers: a }) },
  { route: "HEAD /v1/stream/*", name: "a Durable Stream's metadata", needs: ["read"], setup: createDurable, send: (p, a) => ({ method: "HEAD", url: `/v1/stream${p}`, headers: a }) },
  { route: "DELETE /v1/stream/*", name: "delete a Durable Stream", needs: ["admin"], setup: createDurable, send: (p, a) => ({ method: "DELETE", url: `/v1/stream${p}`, headers: a }) },
  { route: "OPTIONS /v1/stream/*", name: "CORS preflight", needs: "public", send: (p) => ({ method: "OPTIONS", url: `/v1/stream${p}` }) },
];

/** Durable Streams subscriptions (`/v1/stream/__ds/`): configuring needs admin on what a subscription reads; a claim, read on its wake stream. */
const subscriptionId = (p: string): string => p.slice(1).replaceAll("/", "-");
const subscriptionUrl = (p: string): string => `/v1/stream/__ds/subscriptions/${subscriptionId(p)}`;
const pullWake = (p: string): string => JSON.stringify({ type: "pull-wake", streams: [p.slice(1)], wake_stream: `${p.slice(1)}-wake`, lease_ttl_ms: 1000 });
async function createSubscription(path: string): Promise<void> {
  const reply = await fetch(`${gw.url}${subscriptionUrl(path)}`, { method: "PUT", headers: { ...owner(), ...json }, body: pullWake(path) });
  if (reply.status !== 201) throw new Error(`setup subscription for ${path}: ${reply.status} ${await reply.text()}`);
}
const wakeBody = JSON.stringify({ wake_id: "w_0", generation: 1, done: true });
const subscriptionCases: Case[] = [
  { route: "PUT /v1/stream/__ds/*", name: "create a subscription", needs: ["admin"], send: (p, a) => ({ method: "PUT", url: subscriptionUrl(p), headers: { ...a, ...json }, body: pullWake(p) }) },
  { route: "GET /v1/stream/__ds/*", name: "the webhook signing keys (JWKS)", needs: "public", send: () => ({ method: "GET", url: "/v1/stream/__ds/jwks.json" }) },
  { route: "HEAD /v1/stream/__ds/*", name: "the webhook signing keys' headers", needs: "public", send: () => ({ method: "HEAD", url: "/v1/stream/__ds/jwks.json" }) },
  { route: "GET /v1/stream/__ds/*", name: "read a subscription", needs: ["admin"], setup: createSubscription, send: (p, a) => ({ method: "GET", url: subscriptionUrl(p), headers: a }) },
  { route: "DELETE /v1/stream/__ds/*", name: "delete a subscription", needs: ["admin"], setup: createSubscription, send: (p, a) => ({ method: "DELETE", url: subscriptionUrl(p), headers: a }) },
  {
    route: "POST /v1/stream/__ds/*",
    name: "link a subscription to more streams",
    needs: ["admin"],
    setup: createSubscription,
    send: (p, a) => ({ method: "POST", url: `${subscriptionUrl(p)}/streams`, headers: { ...a, ...json }, body: JSON.stringify({ streams: [`${p.slice(1)}/more`] }) }),
  },
  { route: "DELETE /v1/stream/__ds/*", name: "unlink a stream from a subscription", needs: ["admin"], setup: createSubscription, send: (p, a) => ({ method: "DELETE", url: `${subscriptionUrl(p)}/streams/${encodeURIComponent(p.slice(1))}`, headers: a }) },
  // Nothing is pending: a caller allowed to claim learns only that (409 NO_PENDING_WORK).
  { route: "POST /v1/stream/__ds/*", name: "claim a pull-wake subscription's wake", needs: ["read"], allowedStatus: 409, setup: createSubscription, send: (p, a) => ({ method: "POST", url: `${subscriptionUrl(p)}/claim`, headers: { ...a, ...json }, body: JSON.stringify({ worker: "w" }) }) },
  // The wake endpoints take the wake token only: no gateway token is one, whatever it grants (401 TOKEN_INVALID).
  ...["callback", "ack", "release"].map(
    (action): Case => ({ route: "POST /v1/stream/__ds/*", name: `${action} with a gateway token`, needs: "public", allowedStatus: 401, setup: createSubscription, send: (p, a) => ({ method: "POST", url: `${subscriptionUrl(p)}/${action}`, headers: { ...a, ...json }, body: wakeBody }) }),
  ),
  { route: "PATCH /v1/stream/__ds/*", name: "a method the subscriptions do not take", needs: "public", allowedStatus: 405, send: (p, a) => ({ method: "PATCH", url: subscriptionUrl(p), headers: { ...a, ...json }, body: "{}" }) },
  // The bare reserved root names nothing, and can never be created as a stream.
  ...["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH"].map(
    (method): Case => ({ route: `${method} /v1/stream/__ds`, name: `${method} the reserved root`, needs: "public", allowedStatus: 404, send: (_p, a) => ({ method, url: "/v1/stream/__ds", headers: { ...a, "content-type": "text/plain" }, ...(method === "GET" || method === "HEAD" ? {} : { body: "x" }) }) }),
  ),
];

/** Open by design: third parties post webhooks; probes, metrics and the API docs need no token. */
const publicCases: Case[] = [
  {
    route: "POST /hooks/*",
    name: "post an inbound webhook to an open endpoint",
    needs: "public",
    setup: (p) => appendAsOwner(p, { type: "webhook/inbound-configured", payload: { secret: null } }),
    send: (p, a) => ({ method: "POST", url: `/hooks${p}`, headers: { ...a, ...json }, body: "{}" }),
  },
  ...["/healthz", "/readyz", "/metrics", "/docs", "/docs/json", "/docs/yaml", "/docs/static/index.html", "/docs/static/swagger-initializer.js", "/docs/static/swagger-ui.css"].flatMap((url) =>
    ["GET", "HEAD"].map((method): Case => ({ route: `${method} ${url.startsWith("/docs/static/swagger-ui") ? "/docs/static/*" : url}`, name: `${method} ${url}`, needs: "public", send: () => ({ method, url }) })),
  ),
  // The console is a static bundle with no data in it: every request it makes carries the person's token.
  ...[
    { route: "/", url: "/" },
    { route: "/console", url: "/console" },
    { route: "/console/", url: "/console/" },
    { route: "/console/*", url: "/console/streams/some/agent?offset=3" },
    { route: "/console/assets/*", url: `/console/assets/${consoleAsset()}` },
  ].flatMap(({ route, url }) => ["GET", "HEAD"].map((method): Case => ({ route: `${method} ${route}`, name: `${method} ${url} (console)`, needs: "public", send: () => ({ method, url, headers: { accept: "text/html" } }) }))),
];

/** Every agent as an MCP server (`/mcp`): `read` on the path for any MCP request; each tool then needs what its HTTP counterpart needs (`ask`: append too, test/integration/mcp-server.test.ts). */
const mcpHeaders = { "content-type": "application/json", accept: "application/json, text/event-stream" };
const mcpInitialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "matrix", version: "1" } } };
const mcpCases: Case[] = [
  { route: "POST /mcp/*", name: "initialize an MCP session with the agent", needs: ["read"], setup: (p) => appendAsOwner(p, event("note")), send: (p, a) => ({ method: "POST", url: `/mcp${p}`, headers: { ...a, ...mcpHeaders }, body: JSON.stringify(mcpInitialize) }) },
  {
    route: "POST /mcp/*",
    name: "call the agent's ask tool (a reader's call is an error result that stores nothing)",
    needs: ["read"],
    send: (p, a) => ({ method: "POST", url: `/mcp${p}`, headers: { ...a, ...mcpHeaders, "mcp-protocol-version": "2025-06-18" }, body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "ask", arguments: { message: "matrix", timeoutSeconds: 1 } } }) }),
  },
  { route: "GET /mcp/*", name: "open the MCP server's own stream (405: it has none)", needs: ["read"], allowedStatus: 405, send: (p, a) => ({ method: "GET", url: `/mcp${p}`, headers: { ...a, accept: "text/event-stream" } }) },
];

const CASES = [...eventApiCases, ...durableCases, ...subscriptionCases, ...publicCases, ...mcpCases];

function isAllowed(needs: Case["needs"], caller: Caller): boolean {
  if (needs === "public") return true;
  if (caller === "none") return false;
  if (needs === "token") return true;
  if (needs === "admin-everywhere") return false;
  return needs.every((right) => CALLERS[caller]?.some((g) => g.path === `${root}/**` && g.rights.includes(right)) === true);
}

/** Send as given; a live answer (SSE) counts by its status and is closed at once. */
async function send(sent: Sent): Promise<Reply> {
  const abort = new AbortController();
  const response = await fetch(`${gw.url}${sent.url}`, { method: sent.method, headers: sent.headers ?? {}, ...(sent.body === undefined ? {} : { body: sent.body }), signal: abort.signal, redirect: "manual" });
  if (response.headers.get("content-type")?.startsWith("text/event-stream") === true) {
    abort.abort();
    return { status: response.status, body: "" };
  }
  return { status: response.status, body: await response.text() };
}

/** What a refusal must not change: the stream's stored events, and its Durable Streams state and data. */
async function snapshot(path: string): Promise<string> {
  const events = await request<{ events: unknown[] }>(`${gw.url}/streams${path}?limit=1000`, { headers: owner() });
  const durable = await fetch(`${gw.url}/v1/stream${path}?offset=-1`, { headers: owner() });
  return JSON.stringify({ events: events.status === 200 ? events.body.events : events.status, durable: durable.status, data: await durable.text() });
}

let counter = 0;

describe.each(CASES.map((c) => [`${c.route}: ${c.name}`, c] as const))("%s", (_title, testCase) => {
  it.each(Object.keys(CALLERS) as Caller[])("as %s", async (caller) => {
    const path = `${root}/c${(counter += 1)}`;
    await testCase.setup?.(path);
    const watched = testCase.watched?.(path) ?? [path];
    const before = await Promise.all(watched.map(snapshot));
    const token = tokens.get(caller);
    const reply = await send(testCase.send(path, token === undefined ? {} : { authorization: `Bearer ${token}` }));
    if (isAllowed(testCase.needs, caller) && testCase.allowedStatus !== undefined) {
      expect(reply.status, `${caller}: ${reply.body}`).toBe(testCase.allowedStatus);
      return;
    }
    if (isAllowed(testCase.needs, caller)) {
      expect(reply.status, `${caller}: ${reply.body}`).toBeGreaterThanOrEqual(200);
      // The docs' pages redirect to their canonical URL.
      expect(reply.status, `${caller}: ${reply.body}`).toBeLessThan(testCase.needs === "public" ? 400 : 300);
      testCase.allowed?.(reply, caller);
      return;
    }
    expect(reply.status, reply.body).toBe(caller === "none" ? 401 : 403);
    // The log is read back: a check made after the publish would answer 403 and still have stored the event.
    expect(await Promise.all(watched.map(snapshot))).toEqual(before);
  });
});

describe("the table", () => {
  it("names every route the gateway serves", () => {
    const covered = new Set(CASES.map((c) => c.route));
    // Fastify's HEAD twin of the docs' trailing-slash route, which serves the same page as GET /docs.
    covered.add("HEAD /docs/");
    const uncovered = gw.routes.filter((route) => !covered.has(route));
    expect(uncovered, "routes with no authorization rule in this table").toEqual([]);
  });

  it("opens the processors' consumers to admin on every stream, and to nothing less", async () => {
    const everywhere = await mint([{ path: "/**", rights: ["admin"] }], "operator");
    const readEverywhere = await mint([{ path: "/**", rights: ["read", "append"] }], "reader");
    expect((await request(`${gw.url}/processors`, { headers: { authorization: `Bearer ${everywhere}` } })).status).toBe(200);
    expect((await request(`${gw.url}/processors`, { headers: { authorization: `Bearer ${readEverywhere}` } })).status).toBe(403);
    const rewind = (token: string) => request<{ error: { code: string } }>(`${gw.url}/processors/authz-nobody/rewind`, { body: { to: 1 }, headers: { authorization: `Bearer ${token}` } });
    expect((await rewind(everywhere)).body.error.code).toBe("PROCESSOR_NOT_FOUND");
    expect((await rewind(readEverywhere)).status).toBe(403);
  });

  it("forks with read on the source and append on the fork, and not the other way round", async () => {
    const source = `${root}/fork-rights/source/a`;
    const stored = await request<{ offset: number }>(`${gw.url}/streams${source}`, { body: event("note"), headers: owner() });
    const split = await mint([{ path: `${root}/fork-rights/source/**`, rights: ["read"] }, { path: `${root}/fork-rights/forks/**`, rights: ["append"] }], "forker");
    const swapped = await mint([{ path: `${root}/fork-rights/source/**`, rights: ["append"] }, { path: `${root}/fork-rights/forks/**`, rights: ["read"] }], "swapped");
    const fork = (token: string, to: string, extra: Record<string, unknown> = {}) => request<{ error?: { code: string } }>(`${gw.url}/streams${source}/fork`, { body: { at: stored.body.offset, to, ...extra }, headers: { authorization: `Bearer ${token}` } });
    expect((await fork(swapped, `${root}/fork-rights/forks/b`)).status).toBe(403);
    expect((await fork(split, `${root}/fork-rights/forks/a`, { subscriptions: true })).status).toBe(403);
    // Taking the source's subscriptions needs admin on the source too, not only on the fork.
    const forkAdmin = await mint([{ path: `${root}/fork-rights/source/**`, rights: ["read"] }, { path: `${root}/fork-rights/forks/**`, rights: ["append", "admin"] }], "fork-admin");
    expect((await fork(forkAdmin, `${root}/fork-rights/forks/c`, { subscriptions: true })).status).toBe(403);
    expect((await fork(split, `${root}/fork-rights/forks/a`)).status).toBe(201);
    // Nothing was made by the refusals.
    expect((await request(`${gw.url}/streams${root}/fork-rights/forks/b`, { headers: owner() })).status).toBe(404);
  });

  it("covers every admin-only event type on both faces", () => {
    for (const type of AdminEventTypes) {
      expect(CASES.some((c) => c.route === "POST /streams/*" && c.name === `append ${type} alone`)).toBe(true);
      expect(CASES.some((c) => c.route === "POST /v1/stream/*" && c.name === `append ${type} to an agent stream`)).toBe(true);
    }
  });
});
