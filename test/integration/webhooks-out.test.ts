import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { eventsSubject, parseStreamPath, type StreamPath } from "../../shared/contract/subjects.js";
import { buildWebhookPusher } from "../../processors/webhook-pusher/service.js";
import { subscriptionConsumerName } from "../../processors/webhook-pusher/subscriptions.js";
import { request, startGateway, TEST_SECRETS_KEYS, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll, runBuiltProcessor, waitFor, waitForSettledConsumer } from "../support/processors.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

let gw: TestGateway;
let replicas: RunningProcessor[] = [];
const receivers: WebhookReceiver[] = [];
const root = uniquePath("hooks");
const pusherEnv = { SECRETS_KEYS: TEST_SECRETS_KEYS, WEBHOOK_ALLOWED_NETWORKS: "loopback", WEBHOOK_RETRY_SCHEDULE_MS: "0,200,400,800,1600", WEBHOOK_TIMEOUT_MS: "2000" };
const secret = `whsec_${Buffer.from("webhook-secret-24-bytes!").toString("base64")}`;

beforeAll(async () => {
  gw = await startGateway();
  const filterSubject = `${eventsSubject(parseStreamPath(root))}.>`;
  const start = () => runBuiltProcessor("webhook-pusher", (deps) => buildWebhookPusher(deps, { ...process.env, ...pusherEnv }, { filterSubject }), pusherEnv);
  replicas = await Promise.all([start(), start(), start()]);
});
afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await Promise.all(receivers.map((r) => r.close()));
  await gw.close();
});

async function receiver(): Promise<WebhookReceiver> {
  const r = await startWebhookReceiver();
  receivers.push(r);
  return r;
}
const append = (path: string, body: unknown) => request<EventEnvelope | EventEnvelope[]>(`${gw.url}/streams${path}`, { body });
const subscribe = (path: string, payload: Record<string, unknown>) => append(path, { type: "subscription/configured", payload });
const bodies = (r: WebhookReceiver) => r.received.map((w) => JSON.parse(w.body) as EventEnvelope);
const consumerOf = (path: string, slug: string) => subscriptionConsumerName(path as StreamPath, slug);
const lastOffset = async (path: string) => (await readAll(gw.url, path)).at(-1)?.offset ?? 0;

/** A subscription's consumer has every event of its stream so far acknowledged: nothing of it is still to be sent. */
async function settled(path: string, slug: string): Promise<void> {
  await waitForSettledConsumer(gw.nats, consumerOf(path, slug), await lastOffset(path));
}

/** Whether a subscription has a consumer: without one nothing of its stream can be delivered to it. */
async function hasConsumer(path: string, slug: string): Promise<boolean> {
  return gw.nats.jsm.consumers.info(gw.nats.streamName, consumerOf(path, slug)).then(
    () => true,
    () => false,
  );
}
const consumerGone = (path: string, slug: string) => waitFor(async () => ((await hasConsumer(path, slug)) ? undefined : true), 10_000, `consumer of ${slug} deleted`);

describe("webhook pusher (3 replicas)", () => {
  it("delivers matching events in order, once each, signed so that the standardwebhooks package verifies them", async () => {
    const hook = await receiver();
    const path = `${root}/signed`;
    await subscribe(path, { slug: "crm", url: hook.url, types: ["agent/*"], secret });
    const appended = (await append(path, Array.from({ length: 30 }, (_, i) => ({ type: i % 3 === 0 ? "other/noise" : "agent/said", payload: { i } })))).body as EventEnvelope[];
    const expected = appended.filter((e) => e.type === "agent/said");
    await waitFor(async () => Promise.resolve(hook.received.length >= expected.length ? true : undefined), 15_000);
    await settled(path, "crm");
    expect(bodies(hook)).toEqual(expected);
    expect(hook.requests).toHaveLength(expected.length);
    const verifier = new Webhook(secret);
    for (const webhook of hook.received) {
      const headers = { "webhook-id": String(webhook.headers["webhook-id"]), "webhook-timestamp": String(webhook.headers["webhook-timestamp"]), "webhook-signature": String(webhook.headers["webhook-signature"]) };
      expect(() => verifier.verify(webhook.body, headers)).not.toThrow();
      expect(headers["webhook-signature"]).toMatch(/^v1,/);
    }
    expect(hook.received.map((w) => w.headers["webhook-id"])).toEqual(expected.map((e) => `crm_${e.offset}`));
  });

  it("retries a receiver that is down (honouring Retry-After) and delivers everything in order once it is back", async () => {
    const hook = await receiver();
    const path = `${root}/flaky`;
    let downUntil = Date.now() + 60_000;
    const attempts: number[] = [];
    const attemptTimes: number[] = [];
    hook.respond = (w) => {
      attempts.push((JSON.parse(w.body) as EventEnvelope).offset);
      attemptTimes.push(w.at);
      return Date.now() < downUntil ? { status: 503, headers: { "retry-after": "1" } } : { status: 200 };
    };
    await subscribe(path, { slug: "down", url: hook.url });
    const appended = (await append(path, Array.from({ length: 10 }, (_, i) => ({ type: "agent/said", payload: { i } })))).body as EventEnvelope[];
    await waitFor(async () => Promise.resolve(attempts.length >= 2 ? true : undefined), 10_000);
    downUntil = Date.now() + 1_000;
    await waitFor(async () => Promise.resolve(hook.received.length >= 10 ? true : undefined), 20_000);
    expect(bodies(hook).map((e) => e.offset)).toEqual(appended.map((e) => e.offset));
    // While the first event was failing, nothing after it was tried: order is kept.
    const firstSuccess = attempts.findIndex((offset) => offset !== appended[0]?.offset);
    expect(attempts.slice(0, firstSuccess).every((offset) => offset === appended[0]?.offset)).toBe(true);
    // Retry-After (1 s) stretched the 200 ms second step of the schedule.
    expect((attemptTimes[1] ?? 0) - (attemptTimes[0] ?? 0)).toBeGreaterThanOrEqual(950);
  });

  it("records subscription/delivery-failed when retries run out, then goes on with the next event", async () => {
    const hook = await receiver();
    const path = `${root}/exhausted`;
    hook.respond = (w) => ((JSON.parse(w.body) as { type: string }).type === "agent/poison" ? { status: 500 } : { status: 204 });
    await subscribe(path, { slug: "strict", url: hook.url });
    const [poison, fine] = (await append(path, [{ type: "agent/poison" }, { type: "agent/fine" }])).body as EventEnvelope[];
    const failed = await waitFor(async () => (await readAll(gw.url, path)).find((e) => e.type === "subscription/delivery-failed"), 20_000);
    expect(failed.payload).toEqual({ slug: "strict", offset: poison?.offset, attempts: 5, error: "HTTP 500", status: 500 });
    await waitFor(async () => Promise.resolve(hook.received.length === 1 ? true : undefined), 10_000);
    expect(bodies(hook).map((e) => e.offset)).toEqual([fine?.offset]);
    // The pusher's own events are not pushed by default: once its consumer has gone past subscription/delivery-failed, nothing more was sent.
    await settled(path, "strict");
    expect(bodies(hook).some((e) => e.type.startsWith("subscription/"))).toBe(false);
    expect(hook.requests.filter((w) => (JSON.parse(w.body) as EventEnvelope).offset !== poison?.offset)).toHaveLength(1);
  });

  it("disables a subscription whose receiver answers 410 Gone", async () => {
    const hook = await receiver();
    const control = await receiver();
    const path = `${root}/gone`;
    hook.respond = () => ({ status: 410 });
    await subscribe(path, { slug: "old", url: hook.url });
    await append(path, { type: "agent/said" });
    const disabled = await waitFor(async () => (await readAll(gw.url, path)).find((e) => e.type === "subscription/disabled"), 10_000);
    expect(disabled.payload).toMatchObject({ slug: "old", reason: expect.stringContaining("410") as unknown });
    hook.respond = () => ({ status: 204 });
    await consumerGone(path, "old");
    // Another subscription on the stream gets the next event: the pusher is at work, and sends "old" nothing.
    await subscribe(path, { slug: "control", url: control.url, types: ["agent/*"] });
    await append(path, { type: "agent/said-again" });
    await waitFor(async () => Promise.resolve(control.received.length === 1 ? true : undefined), 10_000, "control delivery");
    expect(await hasConsumer(path, "old")).toBe(false);
    expect(hook.requests).toHaveLength(1);
    expect(hook.received).toHaveLength(0);
  });

  it("refuses URLs on private, link-local or unspecified addresses unless allowed, without sending anything", async () => {
    const path = `${root}/ssrf`;
    // 0.0.0.0 is "unspecified", and on Linux it reaches this host: a receiver there sees whatever gets through.
    const intruder = await receiver();
    const control = await receiver();
    await subscribe(path, { slug: "intranet", url: "http://10.0.0.1/hook" });
    await subscribe(path, { slug: "metadata", url: "http://169.254.169.254/latest/meta-data" });
    await subscribe(path, { slug: "mapped", url: "http://[::ffff:192.168.1.1]/hook" });
    await subscribe(path, { slug: "unspecified", url: intruder.url.replace("127.0.0.1", "0.0.0.0") });
    await subscribe(path, { slug: "control", url: control.url, types: ["agent/*"] });
    const disabled = await waitFor(async () => {
      const events = (await readAll(gw.url, path)).filter((e) => e.type === "subscription/disabled");
      return events.length === 4 ? events : undefined;
    }, 10_000);
    const refused = ["intranet", "mapped", "metadata", "unspecified"];
    expect(disabled.map((e) => (e.payload as { slug: string }).slug).sort()).toEqual(refused);
    expect(disabled.map((e) => (e.payload as { reason: string }).reason).join(" ")).toMatch(/private.*linkLocal|linkLocal.*private/);
    expect((disabled.find((e) => (e.payload as { slug: string }).slug === "unspecified")?.payload as { reason: string }).reason).toContain("unspecified");

    // An event all five would take: the allowed one receives it; the refused ones have no consumer to send it
    // (one that had would have to have acknowledged it), and the receiver behind 0.0.0.0 saw no request at all.
    const event = (await append(path, { type: "agent/said" })).body as EventEnvelope;
    await waitFor(async () => Promise.resolve(control.received.length === 1 ? true : undefined), 10_000, "control delivery");
    expect(bodies(control).map((e) => e.offset)).toEqual([event.offset]);
    const withConsumer: string[] = [];
    for (const slug of refused) {
      if (!(await hasConsumer(path, slug))) continue;
      withConsumer.push(slug);
      await waitForSettledConsumer(gw.nats, consumerOf(path, slug), event.offset);
    }
    expect(intruder.requests).toEqual([]);
    expect(withConsumer).toEqual([]);
  });

  it("stops delivering after subscription/removed", async () => {
    const hook = await receiver();
    const path = `${root}/removed`;
    await subscribe(path, { slug: "tmp", url: hook.url });
    await append(path, { type: "agent/one" });
    await waitFor(async () => Promise.resolve(hook.received.length === 1 ? true : undefined), 10_000);
    await append(path, { type: "subscription/removed", payload: { slug: "tmp" } });
    await consumerGone(path, "tmp");
    // Another subscription on the stream gets the next event: the pusher is at work, and sends "tmp" nothing.
    const control = await receiver();
    await subscribe(path, { slug: "control", url: control.url, types: ["agent/*"] });
    await append(path, { type: "agent/two" });
    await waitFor(async () => Promise.resolve(control.received.length === 1 ? true : undefined), 10_000, "control delivery");
    expect(hook.requests).toHaveLength(1);
  });
});
