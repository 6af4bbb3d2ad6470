import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { request, startGateway, TEST_SECRETS_KEYS, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll } from "../support/processors.js";
import { bearer, errorCode, JWT_SECRET, mintToken, readAllAs, startGatewayFromEnv } from "../support/security.js";
import { openSse } from "../support/sse.js";

/** Credentials that events carry (webhook secrets) are stored sealed, never read back, and survive key rotation. */

let open: TestGateway;
let gw: TestGateway;
const root = uniquePath("sec-secrets");

beforeAll(async () => {
  // The gateway under test requires tokens and seals with TEST_SECRETS_KEYS; the open one reads the log back.
  [open, gw] = await Promise.all([startGateway(), startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET })]);
});
afterAll(async () => {
  await Promise.all([open.close(), gw.close()]);
});

const whsec = (text: string) => `whsec_${Buffer.from(text).toString("base64")}`;
const admin = () => mintToken([{ path: `${root}/**`, rights: ["read", "append", "admin"] }], { subject: "owner" });

function hook(url: string, path: string, secret: string, id: string, body = '{"ok":true}'): Promise<number> {
  const at = new Date();
  const headers = { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(Math.floor(at.getTime() / 1000)), "webhook-signature": new Webhook(secret).sign(id, at, body) };
  return fetch(`${url}/hooks${path}`, { method: "POST", headers, body }).then(async (r) => {
    await r.arrayBuffer();
    return r.status;
  });
}

/** The raw text of an SSE response until `done` holds for it. */
async function sseText(url: string, headers: Record<string, string>, done: (text: string) => boolean): Promise<string> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: controller.signal });
  expect(response.status).toBe(200);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = setTimeout(() => { controller.abort(); }, 10_000);
  try {
    while (!done(text)) {
      const { done: ended, value } = await reader.read();
      if (ended) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(deadline);
    controller.abort();
  }
  return text;
}

describe("secrets in events", () => {
  it("never lets a credential out through a read, refuses sealed copies, and stores none without SECRETS_KEYS", async () => {
    const token = await admin();
    const path = `${root}/vault`;
    const inbound = whsec("inbound-vault-secret-24b");
    const outbound = whsec("outbound-vault-secret-24");
    const secrets = [inbound, outbound, inbound.slice("whsec_".length), outbound.slice("whsec_".length)];
    const post = (p: string, body: unknown, query = "") => request(`${gw.url}/streams${p}${query}`, { body, headers: bearer(token) });
    expect((await post(path, { type: "webhook/inbound-configured", payload: { secret: inbound } })).status).toBe(201);
    // A loopback URL on a closed port: no pusher watches this root, and none could reach anything else.
    expect((await post(path, { type: "subscription/configured", payload: { slug: "crm", url: "http://127.0.0.1:1/hook", secret: outbound } })).status).toBe(201);

    const json = await fetch(`${gw.url}/streams${path}`, { headers: bearer(token) }).then((r) => r.text());
    const stored = (JSON.parse(json) as { events: EventEnvelope[] }).events;
    expect(stored.map((e) => e.type)).toEqual(["webhook/inbound-configured", "subscription/configured"]);
    const sealed = stored.map((e) => (e.payload as { secret: string }).secret);
    for (const value of sealed) expect(value).toMatch(/^sealed:v1:test:/);
    const views: Record<string, string> = {
      json,
      sse: await sseText(`${gw.url}/streams${path}?live=sse&access_token=${token}`, {}, (text) => /subscription\/configured[^\n]*\n(?:[^\n]+\n)*\n/.test(text)),
      durable: await fetch(`${gw.url}/v1/stream${path}?offset=-1`, { headers: bearer(token) }).then((r) => r.text()),
      listing: await fetch(`${gw.url}/streams?prefix=${root}`, { headers: bearer(token) }).then((r) => r.text()),
      subtree: await fetch(`${gw.url}/streams${root}/**`, { headers: bearer(token) }).then((r) => r.text()),
      subtreeSse: await sseText(`${gw.url}/streams${root}/**?live=sse`, bearer(token), (text) => /subscription\/configured[^\n]*\n(?:[^\n]+\n)*\n/.test(text)),
    };
    expect(views.durable).toContain("sealed:v1:");
    expect(views.subtree).toContain("sealed:v1:");
    expect(views.listing).toContain(path);
    for (const [view, text] of Object.entries(views)) {
      for (const secret of secrets) expect([view, text.includes(secret)]).toEqual([view, false]);
    }

    // A sealed value copied into another stream is refused, not stored (it would not open there anyway).
    const copy = `${root}/copy`;
    const copied = await post(copy, { type: "webhook/inbound-configured", payload: { secret: sealed[0] } });
    expect([copied.status, errorCode(copied)]).toEqual([400, "INVALID_EVENT"]);

    // A gateway without SECRETS_KEYS cannot seal, so it stores no credential at all.
    const keyless = await startGatewayFromEnv({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET });
    const clear = `${root}/keyless`;
    try {
      const refused = await request(`${keyless.url}/streams${clear}`, { body: { type: "webhook/inbound-configured", payload: { secret: inbound } }, headers: bearer(token) });
      expect([refused.status, errorCode(refused)]).toEqual([503, "SECRETS_UNAVAILABLE"]);
    } finally {
      await keyless.close();
    }

    // Ephemeral events go to live readers as sent: a credential is never one.
    const tail = await openSse(`${gw.url}/streams${path}?live=sse&after=${stored.at(-1)?.offset ?? 0}`, bearer(token));
    const ephemeral = await post(path, { type: "subscription/configured", payload: { slug: "live", url: "http://127.0.0.1:1/hook", secret: outbound } }, "?ephemeral=true");
    expect([ephemeral.status, errorCode(ephemeral)]).toEqual([400, "INVALID_EVENT"]);
    expect((await post(path, { type: "marker" })).status).toBe(201);
    await tail.waitFor((messages) => messages.some((m) => (m.data as { type: string }).type === "marker"));
    tail.abort();
    expect(tail.messages.map((m) => (m.data as { type: string }).type)).toEqual(["marker"]);

    expect((await readAll(open.url, path)).map((e) => e.type)).toEqual(["webhook/inbound-configured", "subscription/configured", "marker"]);
    expect(await readAll(open.url, copy)).toEqual([]);
    expect(await readAll(open.url, clear)).toEqual([]);
  });

  it("seals a subscription URL (it may carry a credential) and the secrets of an event a schedule will append", async () => {
    const path = `${root}/nested`;
    const url = "https://hook-user:hunter2@example.invalid/services/T000/XSECRETPATH";
    const scheduled = whsec("scheduled-secret-24-byte");
    const token = await admin();
    const headers = { authorization: `Bearer ${token}` };
    expect((await request(`${gw.url}/streams${path}`, { body: { type: "subscription/configured", payload: { slug: "s", url } }, headers })).status).toBe(201);
    const schedule = { slug: "later", append: { type: "webhook/inbound-configured", payload: { secret: scheduled } }, schedule: { kind: "in", seconds: 3600 } };
    expect((await request(`${gw.url}/streams${path}`, { body: { type: "schedule/added", payload: schedule }, headers })).status).toBe(201);
    const text = await (await fetch(`${gw.url}/streams${path}`, { headers })).text();
    for (const leak of ["hunter2", "XSECRETPATH", scheduled, scheduled.slice("whsec_".length)]) expect(text).not.toContain(leak);
    const events = JSON.parse(text) as { events: { type: string; payload: Record<string, unknown> }[] };
    expect(String(events.events[0]?.payload.url)).toMatch(/^sealed:v1:/);
    const nested = events.events[1]?.payload.append as { payload: { secret: string } };
    expect(nested.payload.secret).toMatch(/^sealed:v1:/);
  });

  it("opens secrets sealed under a rotated-out key, seals new ones under the first key, and verifies with the newest secret", async () => {
    const token = await admin();
    const path = `${root}/rotated`;
    const before = whsec("secret-before-rotation!!");
    const after = whsec("secret-after-rotation!!!");
    expect((await request(`${gw.url}/streams${path}`, { body: { type: "webhook/inbound-configured", payload: { secret: before } }, headers: bearer(token) })).status).toBe(201);

    // A second gateway with a new key first (it seals) and the old one still listed (it opens).
    const rotated = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET, SECRETS_KEYS: `new:${randomBytes(32).toString("base64")},${TEST_SECRETS_KEYS}` });
    try {
      expect(await hook(rotated.url, path, before, "msg_1")).toBe(201);
      const reconfigured = await request<EventEnvelope>(`${rotated.url}/streams${path}`, { body: { type: "webhook/inbound-configured", payload: { secret: after } }, headers: bearer(token) });
      expect(reconfigured.status).toBe(201);
      expect((reconfigured.body.payload as { secret: string }).secret).toMatch(/^sealed:v1:new:/);
      expect(await hook(rotated.url, path, before, "msg_2")).toBe(401);
      expect(await hook(rotated.url, path, after, "msg_3")).toBe(201);
    } finally {
      await rotated.close();
    }
    const events = await readAllAs(gw.url, path, token);
    expect(events.map((e) => e.type)).toEqual(["webhook/inbound-configured", "webhook/received", "webhook/inbound-configured", "webhook/received"]);
    expect(events.map((e) => (e.payload as { secret?: string }).secret?.slice(0, "sealed:v1:new:".length))).toEqual(["sealed:v1:test", undefined, "sealed:v1:new:", undefined]);
    expect(events.filter((e) => e.type === "webhook/received").map((e) => (e.payload as { headers: Record<string, string> }).headers["webhook-id"])).toEqual(["msg_1", "msg_3"]);
  });
});
