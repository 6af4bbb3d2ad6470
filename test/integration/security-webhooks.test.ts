import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LogIndex } from "../../shared/log/log-index.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { loadBreakerConfig } from "../../processors/breaker/config.js";
import { breakerProcessor } from "../../processors/breaker/processor.js";
import { AddressGuard } from "../../shared/outbound/address-guard.js";
import { loadWebhookPusherConfig } from "../../processors/webhook-pusher/config.js";
import { webhookPusherProcessor } from "../../processors/webhook-pusher/processor.js";
import { SecretBox } from "../../shared/log/secrets.js";
import type { SubscriptionEntry } from "../../processors/webhook-pusher/subscriptions.js";
import { request, startGateway, TEST_SECRETS_KEYS, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll, runBuiltProcessor, runProcessor, uniqueName, waitFor, waitForConsumer } from "../support/processors.js";
import { bearer, errorCode, JWT_SECRET, mintToken, waitForConsumerIdle } from "../support/security.js";
import { startWebhookReceiver } from "../support/webhook-receiver.js";

/** Webhooks in and out: what a third party can do to a stream, and where the pusher may not connect. */

let open: TestGateway;
let gw: TestGateway;
const root = uniquePath("sec-hooks");
const filterSubject = `${eventsSubject(parseStreamPath(root))}.>`;

beforeAll(async () => {
  // The gateway under test requires tokens; the open one (AUTH=off, same NATS) reads back what was stored.
  // Every test client is 127.0.0.1: the per-address webhook limit is raised so that the per-stream one is what these tests see.
  [open, gw] = await Promise.all([startGateway(), startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET, HOOKS_PER_CLIENT_PER_SECOND: "100000" })]);
});
afterAll(async () => {
  await Promise.all([open.close(), gw.close()]);
});

const hookSecret = `whsec_${Buffer.from("inbound-replay-secret-24").toString("base64")}`;

function signed(secret: string, id: string, at: Date, body: string): Record<string, string> {
  return { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(Math.floor(at.getTime() / 1000)), "webhook-signature": new Webhook(secret).sign(id, at, body) };
}

describe("webhooks and security", () => {
  it("a flood of unauthenticated inbound webhooks cannot pause a stream or block its owner", async () => {
    const defaults = loadBreakerConfig({});
    const name = uniqueName("sec-breaker");
    const breaker: RunningProcessor = await runProcessor({ ...breakerProcessor({ maxEventsPerSecond: defaults.BREAKER_MAX_EVENTS_PER_SECOND, burst: defaults.BREAKER_BURST }), name, filterSubject });
    try {
      await waitForConsumer(gw.nats, name);
      const path = `${root}/flooded`;
      // The owner opens the stream's endpoint to unsigned webhooks: anyone may then post to it.
      const opener = await mintToken([{ path: `${root}/**`, rights: ["admin"] }], { subject: "owner" });
      expect((await request(`${gw.url}/streams${path}`, { body: { type: "webhook/inbound-configured", payload: { secret: null } }, headers: bearer(opener) })).status).toBe(201);
      const startedAt = Date.now();
      const replies = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const response = await fetch(`${gw.url}/hooks${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ i }) });
          return { status: response.status, retryAfter: response.headers.get("retry-after"), body: await response.json() };
        }),
      );
      const accepted = replies.filter((r) => r.status === 201);
      const limited = replies.filter((r) => r.status === 429);
      // Stored or refused for the rate: none refused because the stream got paused (423) or for anything else.
      expect(replies.filter((r) => r.status !== 201 && r.status !== 429).map((r) => [r.status, errorCode(r)])).toEqual([]);
      // HOOKS_PER_STREAM_PER_SECOND (20) per one-second window: a burst shorter than a second spans at most two.
      const windows = Math.ceil((Date.now() - startedAt) / 1000) + 1;
      expect(accepted.length).toBeGreaterThanOrEqual(1);
      expect(accepted.length).toBeLessThanOrEqual(20 * windows);
      expect(limited.length).toBeGreaterThanOrEqual(200 - 20 * windows);
      for (const reply of limited) {
        expect(errorCode(reply)).toBe("RATE_LIMITED");
        expect(Number(reply.retryAfter)).toBeGreaterThanOrEqual(1);
      }

      // The breaker has seen every stored event and reacted (or not) to each.
      await waitForConsumerIdle(gw.nats, `processor-${name}`);
      const events = await readAll(open.url, path);
      expect(events.filter((e) => e.type === "webhook/received")).toHaveLength(accepted.length);
      expect(events.filter((e) => e.type === "stream/paused")).toEqual([]);
      const owner = await mintToken([{ path: `${root}/**`, rights: ["append"] }], { subject: "owner" });
      const own = await request(`${gw.url}/streams${path}`, { body: { type: "owner/note" }, headers: bearer(owner) });
      expect(own.status).toBe(201);
    } finally {
      await breaker.stop();
    }
  });

  it("bounds what one sender can write across many streams: HOOKS_PER_CLIENT_PER_SECOND", async () => {
    const limited = await startGateway({ HOOKS_PER_CLIENT_PER_SECOND: "10" });
    try {
      const paths = Array.from({ length: 30 }, (_, i) => `${root}/spread-${i}`);
      for (const path of paths) expect((await request(`${open.url}/streams${path}`, { body: { type: "webhook/inbound-configured", payload: { secret: null } } })).status).toBe(201);
      const startedAt = Date.now();
      const statuses = await Promise.all(paths.map((path) => fetch(`${limited.url}/hooks${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }).then((r) => r.status)));
      const windows = Math.ceil((Date.now() - startedAt) / 1000) + 1;
      const accepted = statuses.filter((s) => s === 201).length;
      expect(statuses.filter((s) => s !== 201 && s !== 429)).toEqual([]);
      expect(accepted).toBeLessThanOrEqual(10 * windows);
      // Refused means not stored.
      let stored = 0;
      for (const path of paths) stored += (await readAll(open.url, path)).filter((e) => e.type === "webhook/received").length;
      expect(stored).toBe(accepted);
    } finally {
      await limited.close();
    }
  });

  it("refuses a signed inbound webhook whose timestamp is too old, and stores a replay of a fresh one once", async () => {
    const path = `${root}/replayed`;
    const admin = await mintToken([{ path: `${root}/**`, rights: ["read", "append", "admin"] }], { subject: "owner" });
    expect((await request(`${gw.url}/streams${path}`, { body: { type: "webhook/inbound-configured", payload: { secret: hookSecret } }, headers: bearer(admin) })).status).toBe(201);
    const body = '{"order":17}';
    const hook = (headers: Record<string, string>) => fetch(`${gw.url}/hooks${path}`, { method: "POST", headers, body }).then(async (r) => ({ status: r.status, body: await r.json() }));

    // Signed correctly, but 100 s ago: a captured request replayed after the dedupe window could otherwise pass.
    const old = await hook(signed(hookSecret, "msg_old", new Date(Date.now() - 100_000), body));
    expect([old.status, errorCode(old)]).toEqual([401, "INVALID_SIGNATURE"]);
    const freshHeaders = signed(hookSecret, "msg_fresh", new Date(), body);
    expect((await hook(freshHeaders)).status).toBe(201);
    expect((await hook(freshHeaders)).status).toBe(200);

    const received = (await readAll(open.url, path)).filter((e) => e.type === "webhook/received");
    expect(received.map((e) => (e.payload as { headers: Record<string, string> }).headers["webhook-id"])).toEqual(["msg_fresh"]);
  });

  it("refuses webhook URLs whose IPv6 form carries a loopback IPv4 address", async () => {
    const receiver = await startWebhookReceiver();
    const port = new URL(receiver.url).port;
    const name = uniqueName("sec-pusher");
    const bucket = `sec-subscriptions-${randomBytes(4).toString("hex")}`;
    const pusherEnv = { SECRETS_KEYS: TEST_SECRETS_KEYS, WEBHOOK_ALLOWED_NETWORKS: "", WEBHOOK_RETRY_SCHEDULE_MS: "0,200", WEBHOOK_TIMEOUT_MS: "2000" };
    // The pusher's processor as buildWebhookPusher wires it, with production's address guard (no private network
    // allowed), but over a subscription index of its own: the shared one would start this pusher's workers on every
    // other test's subscriptions, and refuse their loopback receivers.
    const pusher = await runBuiltProcessor(
      name,
      async (deps) => {
        const config = loadWebhookPusherConfig(pusherEnv);
        const index = await LogIndex.open<SubscriptionEntry>(deps.nats, bucket, deps.logger);
        deps.onStop(async () => {
          index.close();
          await deps.nats.jsm.streams.delete(`KV_${bucket}`).catch(() => false);
        });
        const processor = webhookPusherProcessor({ nats: deps.nats, index, guard: new AddressGuard(config.WEBHOOK_ALLOWED_NETWORKS), secrets: config.SECRETS_KEYS === undefined ? null : new SecretBox(config.SECRETS_KEYS), timeoutMs: config.WEBHOOK_TIMEOUT_MS });
        return { ...processor, name, filterSubject };
      },
      pusherEnv,
    );
    try {
      await waitForConsumer(open.nats, name);
      const path = `${root}/ssrf`;
      const urls = { compatible: `http://[::127.0.0.1]:${port}/hook`, mapped: `http://[::ffff:127.0.0.1]:${port}/hook` };
      for (const [slug, url] of Object.entries(urls)) {
        expect((await request(`${open.url}/streams${path}`, { body: { type: "subscription/configured", payload: { slug, url } } })).status).toBe(201);
      }
      const disabled = await waitFor(
        async () => {
          const found = (await readAll(open.url, path)).filter((e) => e.type === "subscription/disabled");
          return found.length === 2 ? found : undefined;
        },
        10_000,
        "both subscriptions disabled",
      );
      for (const event of disabled) expect((event.payload as { reason: string }).reason).toMatch(/loopback/);
      expect(disabled.map((e) => (e.payload as { slug: string }).slug).sort()).toEqual(["compatible", "mapped"]);

      // Events after them would be delivered by an active subscription: the pusher has handled them all, and sent nothing.
      expect((await request(`${open.url}/streams${path}`, { body: { type: "agent/said", payload: { text: "hello" } } })).status).toBe(201);
      await waitForConsumerIdle(open.nats, `processor-${name}`);
      expect(receiver.received).toEqual([]);
    } finally {
      await pusher.stop();
      await receiver.close();
    }
  });
});
