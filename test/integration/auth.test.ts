import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { openSse } from "../support/sse.js";

const secret = "a-test-secret-that-is-at-least-32-characters";
let gw: TestGateway;
const root = uniquePath("authz");

beforeAll(async () => {
  gw = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: secret });
});
afterAll(async () => {
  await gw.close();
});

async function token(streams: { path: string; rights: string[] }[], options: { expires?: string; key?: string } = {}): Promise<string> {
  return new SignJWT({ streams })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("test")
    .setExpirationTime(options.expires ?? "5m")
    .sign(new TextEncoder().encode(options.key ?? secret));
}
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const post = (path: string, body: unknown, t?: string) => request(`${gw.url}/streams${path}`, { body, ...(t === undefined ? {} : { headers: bearer(t) }) });
const get = (path: string, t?: string) => request(`${gw.url}/streams${path}`, t === undefined ? {} : { headers: bearer(t) });
const codeOf = (reply: { body: unknown }) => (reply.body as { error?: { code: string } }).error?.code;

describe("bearer tokens", () => {
  it("401 without a token or with a bad one, naming Bearer", async () => {
    const none = await post(`${root}/a`, { type: "t" });
    expect(none.status).toBe(401);
    expect(codeOf(none)).toBe("UNAUTHENTICATED");
    expect(none.headers.get("www-authenticate")).toContain("Bearer");
    expect((await post(`${root}/a`, { type: "t" }, await token([{ path: "/**", rights: ["append"] }], { key: "another-secret-another-secret-another" }))).status).toBe(401);
    expect((await post(`${root}/a`, { type: "t" }, await token([{ path: "/**", rights: ["append"] }], { expires: "-1m" }))).status).toBe(401);
    expect((await request(`${gw.url}/streams${root}/a`, { body: { type: "t" }, headers: { authorization: "Basic abc" } })).status).toBe(401);
  });

  it("grants exactly the rights on exactly the paths it names", async () => {
    const writer = await token([{ path: `${root}/bot-1/**`, rights: ["append"] }]);
    const reader = await token([{ path: `${root}/**`, rights: ["read"] }]);
    expect((await post(`${root}/bot-1`, { type: "t" }, writer)).status).toBe(201);
    expect((await post(`${root}/bot-1/inbox`, { type: "t" }, writer)).status).toBe(201);
    const elsewhere = await post(`${root}/bot-2`, { type: "t" }, writer);
    expect(elsewhere.status).toBe(403);
    expect(codeOf(elsewhere)).toBe("FORBIDDEN");
    expect((await get(`${root}/bot-1`, writer)).status).toBe(403);
    expect((await get(`${root}/bot-1`, reader)).status).toBe(200);
    expect((await get(`${root}/**`, reader)).status).toBe(200);
    expect((await get(`${root}/**`, writer)).status).toBe(403);
    expect((await post(`${root}/bot-1`, { type: "t" }, reader)).status).toBe(403);
  });

  it("needs admin to resume a stream and to configure schedules, subscriptions and limits", async () => {
    const writer = await token([{ path: `${root}/**`, rights: ["append", "read"] }]);
    const admin = await token([{ path: `${root}/**`, rights: ["append", "admin"] }]);
    for (const type of ["schedule/added", "subscription/configured", "stream/circuit-breaker-configured", "stream/paused"]) {
      expect((await post(`${root}/ops`, { type, payload: {} }, writer)).status).toBe(403);
    }
    expect((await post(`${root}/ops`, { type: "stream/paused", payload: { reason: "maintenance" } }, admin)).status).toBe(201);
    expect((await request(`${gw.url}/streams${root}/ops/resume`, { body: {}, headers: bearer(writer) })).status).toBe(403);
    expect((await request(`${gw.url}/streams${root}/ops/resume`, { body: {}, headers: bearer(admin) })).status).toBe(201);
  });

  it("accepts access_token on GET for EventSource clients, and lists only readable streams", async () => {
    const writer = await token([{ path: "/**", rights: ["append"] }]);
    await post(`${root}/visible/x`, { type: "t" }, writer);
    await post(`${root}/hidden/x`, { type: "t" }, writer);
    const narrow = await token([{ path: `${root}/visible/**`, rights: ["read"] }]);
    const sse = await openSse(`${gw.url}/streams${root}/visible/x?live=sse&access_token=${narrow}`);
    expect(sse.status).toBe(200);
    await sse.waitFor((m) => m.length === 1);
    sse.abort();
    const listed = await request<{ streams: { path: string }[] }>(`${gw.url}/streams?prefix=${root}`, { headers: bearer(narrow) });
    expect(listed.body.streams.map((s) => s.path)).toEqual([`${root}/visible/x`]);
    expect((await request(`${gw.url}/streams?prefix=${root}`)).status).toBe(401);
  });

  it("leaves inbound webhooks and health endpoints to their own rules", async () => {
    const admin = await token([{ path: `${root}/**`, rights: ["admin"] }]);
    expect((await post(`${root}/hooked`, { type: "webhook/inbound-configured", payload: { secret: null } }, admin)).status).toBe(201);
    const hook = await fetch(`${gw.url}/hooks${root}/hooked`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(hook.status).toBe(201);
    expect((await request(`${gw.url}/healthz`)).status).toBe(200);
    expect((await request(`${gw.url}/readyz`)).status).toBe(200);
  });

  it("npm run token mints a token the gateway accepts", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", join(import.meta.dirname, "../../gateway/auth/mint-token.ts"), "--path", `${root}/minted/**`, "--rights", "read,append", "--expires", "10m"], {
      env: { ...process.env, AUTH_JWT_SECRET: secret },
    });
    const minted = stdout.trim();
    expect((await post(`${root}/minted/a`, { type: "t" }, minted)).status).toBe(201);
    expect((await get(`${root}/minted/a`, minted)).status).toBe(200);
    expect((await post(`${root}/other`, { type: "t" }, minted)).status).toBe(403);
  });
});
