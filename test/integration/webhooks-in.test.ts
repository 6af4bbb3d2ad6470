import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll } from "../support/processors.js";

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  await gw.close();
});

const opened = new Set<string>();

/** A stream takes webhooks once an admin opened its endpoint: each test's path is opened, unsigned, on first use. */
async function openEndpoint(path: string): Promise<void> {
  if (opened.has(path)) return;
  opened.add(path);
  expect((await request(`${gw.url}/streams${path}`, { body: { type: "webhook/inbound-configured", payload: { secret: null } } })).status).toBe(201);
}

async function hook(path: string, body: string | Uint8Array | undefined, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  await openEndpoint(path);
  const response = await fetch(`${gw.url}/hooks${path}`, { method: "POST", headers, ...(body === undefined ? {} : { body }) });
  return { status: response.status, body: await response.json() };
}
const received = async (path: string) => (await readAll(gw.url, path)).filter((e) => e.type === "webhook/received").map((e) => e.payload as Record<string, unknown>);

describe("inbound webhooks", () => {
  it("takes none on a stream whose endpoint no admin opened (404, nothing stored), so no path can be written to or taken by a third party", async () => {
    const path = uniquePath("in");
    const refused = await fetch(`${gw.url}/hooks${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(refused.status).toBe(404);
    expect(await refused.json()).toMatchObject({ error: { code: "NOT_FOUND" } });
    expect(await readAll(gw.url, path)).toEqual([]);
    // Nor did it create the stream: the path is free for a Durable Stream of its owner's.
    expect((await fetch(`${gw.url}/v1/stream${path}`, { method: "PUT", headers: { "content-type": "text/plain" } })).status).toBe(201);
  });

  it("refuses a misshaped endpoint configuration rather than storing it (a typo would leave webhooks unsigned)", async () => {
    const path = uniquePath("in");
    const typo = await request(`${gw.url}/streams${path}`, { body: { type: "webhook/inbound-configured", payload: { secrets: ["whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="] } } });
    expect(typo.status).toBe(400);
    expect(typo.body).toMatchObject({ error: { code: "INVALID_EVENT" } });
    expect(await readAll(gw.url, path)).toEqual([]);
  });

  it("accepts any body and keeps JSON as JSON, text as text, binary as base64", async () => {
    const path = uniquePath("in");
    const cases: [string | Uint8Array | undefined, Record<string, string>, Record<string, unknown>][] = [
      ['{"order":17}', { "content-type": "application/json" }, { bodyEncoding: "json", body: { order: 17 } }],
      ['{"order":', { "content-type": "application/json" }, { bodyEncoding: "text", body: '{"order":' }],
      ["{}", { "content-type": "application/vnd.github+json" }, { bodyEncoding: "json", body: {} }],
      ["a=1&b=two", { "content-type": "application/x-www-form-urlencoded" }, { bodyEncoding: "text", body: "a=1&b=two" }],
      ["hello", { "content-type": "text/plain; charset=utf-8" }, { bodyEncoding: "text", body: "hello" }],
      [new Uint8Array([0, 1, 2, 255]), { "content-type": "application/octet-stream" }, { bodyEncoding: "base64", body: "AAEC/w==" }],
      [new Uint8Array([0xff, 0xfe]), { "content-type": "text/plain" }, { bodyEncoding: "base64", body: "//4=" }],
      [undefined, {}, { bodyEncoding: "empty", body: null }],
    ];
    for (const [body, headers] of cases) expect((await hook(path, body, headers)).status).toBe(201);
    const stored = await received(path);
    expect(stored.map((p) => ({ bodyEncoding: p.bodyEncoding, body: p.body }))).toEqual(cases.map(([, , expected]) => expected));
    expect(stored[0]?.contentType).toBe("application/json");
  });

  it("drops hop-by-hop and credential headers, keeps the rest", async () => {
    const path = uniquePath("in");
    const credentials = { authorization: "Bearer secret", cookie: "s=1", "x-gitlab-token": "t1", "x-telegram-bot-api-secret-token": "t2", "private-token": "t3", "x-hub-signature-256": "sha256=ab", "webhook-signature": "v1,abc" };
    await hook(path, "{}", { "content-type": "application/json", ...credentials, "x-github-event": "push", "user-agent": "GitHub-Hookshot" });
    const [payload] = await received(path);
    const headers = payload?.headers as Record<string, string>;
    expect(headers["x-github-event"]).toBe("push");
    expect(headers["user-agent"]).toBe("GitHub-Hookshot");
    for (const name of [...Object.keys(credentials), "host"]) expect(headers[name], name).toBeUndefined();
  });

  it("stores a sender's retry (same webhook-id) once", async () => {
    const path = uniquePath("in");
    const first = await hook(path, '{"n":1}', { "content-type": "application/json", "webhook-id": "msg_abc" });
    const retry = await hook(path, '{"n":1}', { "content-type": "application/json", "webhook-id": "msg_abc" });
    expect([first.status, retry.status]).toEqual([201, 200]);
    expect((retry.body as EventEnvelope).offset).toBe((first.body as EventEnvelope).offset);
    expect(await received(path)).toHaveLength(1);
  });

  it("verifies Standard Webhooks signatures on the raw bytes once the stream has a secret", async () => {
    const path = uniquePath("in");
    const secret = `whsec_${Buffer.from("a-shared-secret-of-24-by").toString("base64")}`;
    opened.add(path);
    expect((await request(`${gw.url}/streams${path}`, { body: { type: "webhook/inbound-configured", payload: { secret } } })).status).toBe(201);
    // Whitespace and key order a JSON re-serialisation would lose.
    const body = '{ "b": 2,  "a": 1 }';
    const signed = (id: string, key = secret) => {
      const timestamp = new Date();
      return { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)), "webhook-signature": new Webhook(key).sign(id, timestamp, body) };
    };
    const configured = await readAll(gw.url, path);
    expect(await hook(path, body, { "content-type": "application/json" })).toMatchObject({ status: 401, body: { error: { code: "INVALID_SIGNATURE" } } });
    const wrongKey = `whsec_${Buffer.from("another-secret-of-24-byt").toString("base64")}`;
    expect((await hook(path, body, signed("msg_1", wrongKey))).status).toBe(401);
    expect((await hook(path, `${body} `, signed("msg_2"))).status).toBe(401);
    // Refused means not stored: the log is as it was before the three.
    expect(await readAll(gw.url, path)).toEqual(configured);
    expect((await hook(path, body, signed("msg_3"))).status).toBe(201);
    const stored = await received(path);
    expect(stored).toHaveLength(1);
    expect(stored[0]?.body).toEqual({ a: 1, b: 2 });
    // Removing the secret turns verification off again.
    await request(`${gw.url}/streams${path}`, { body: { type: "webhook/inbound-configured", payload: { secret: null } } });
    expect((await hook(path, "unsigned", { "content-type": "text/plain" })).status).toBe(201);
  });

  it("refuses webhooks for a paused stream with 423, so the sender retries later", async () => {
    const path = uniquePath("in");
    await openEndpoint(path);
    await request(`${gw.url}/streams${path}`, { body: { type: "stream/paused", payload: { reason: "maintenance" } } });
    const paused = await readAll(gw.url, path);
    const refused = await hook(path, "{}", { "content-type": "application/json" });
    expect(refused).toMatchObject({ status: 423, body: { error: { code: "STREAM_PAUSED" } } });
    // A third party learns that the stream takes nothing now, not why nor since when.
    expect(JSON.stringify(refused.body)).not.toContain("maintenance");
    expect(await readAll(gw.url, path)).toEqual(paused);
  });

  it("refuses an invalid path", async () => {
    const response = await fetch(`${gw.url}/hooks/a//b`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect({ status: response.status, body: await response.json() }).toMatchObject({ status: 400, body: { error: { code: "INVALID_STREAM_PATH" } } });
  });
});
