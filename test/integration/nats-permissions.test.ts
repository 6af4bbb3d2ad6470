import { spawn } from "node:child_process";
import { join } from "node:path";
import { connect, PermissionViolationError, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { buildGoTools } from "../../deploy/local/go-tools.js";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { followStream } from "../../shared/log/follow.js";
import { parseStreamPath } from "../../shared/contract/subjects.js";
import { request, startGateway } from "../support/gateway.js";
import { readAll, runProcessor, waitFor } from "../support/processors.js";

const root = join(import.meta.dirname, "../..");
const passwords = { GATEWAY_PASSWORD: "gateway-pw", PROCESSOR_PASSWORD: "processor-pw", GO_TOOLS_PASSWORD: "go-tools-pw" };

/** The server's own refusal of exactly this operation on exactly this subject: not a timeout, nor any other error. */
function expectViolation(err: unknown, operation: "publish" | "subscription", subject: string): void {
  const violation = err instanceof PermissionViolationError ? err : err instanceof Error && err.cause instanceof PermissionViolationError ? err.cause : undefined;
  expect(violation, `expected a permissions violation, got ${String(err)}`).toBeInstanceOf(PermissionViolationError);
  expect({ operation: violation?.operation, subject: violation?.subject }).toEqual({ operation, subject });
}

/** A request (a JetStream publish, a KV write, a JetStream API call) the server refuses to let out. */
async function expectPublishRefused(nc: NatsConnection, subject: string): Promise<void> {
  const err = await nc.request(subject, "forged", { timeout: 5_000 }).then(() => undefined, (e: unknown) => e);
  expectViolation(err, "publish", subject);
}

async function expectSubscribeRefused(nc: NatsConnection, subject: string): Promise<void> {
  const sub = nc.subscribe(subject);
  await nc.flush();
  expectViolation(await sub.closed, "subscription", subject);
}

describe("the NATS permissions shipped in deploy/nats/permissions.conf", () => {
  it("let each service do its job as its own user, and nothing outside it", async () => {
    const server = await startNatsServer({ configFile: join(root, "deploy/nats/permissions.conf"), env: passwords });
    const gw = await startGateway({ NATS_URL: server.url, NATS_USER: "gateway", NATS_PASSWORD: passwords.GATEWAY_PASSWORD });
    const stops: (() => Promise<unknown>)[] = [() => gw.close(), () => server.stop()];
    try {
      // The gateway: append, read, tail, inbound webhooks, its KV indexes.
      const path = "/agents/permitted";
      expect((await request(`${gw.url}/streams${path}`, { body: { type: "agent/configured", payload: {} } })).status).toBe(201);
      expect((await request(`${gw.url}/streams${path}`)).status).toBe(200);
      expect((await request(`${gw.url}/streams${path}`, { body: { type: "stream/paused", payload: { reason: "check" } } })).status).toBe(201);
      expect((await request(`${gw.url}/streams${path}/resume`, { body: {} })).status).toBe(201);

      // The gateway's Durable Streams face: stream records in KV, data on durable.<id>, change signals for long-polls.
      const ds = `${gw.url}/v1/stream/permitted-ds`;
      expect((await fetch(ds, { method: "PUT", headers: { "content-type": "text/plain" } })).status).toBe(201);
      const tail = (await fetch(`${ds}?offset=-1`)).headers.get("stream-next-offset") ?? "";
      const waiting = fetch(`${ds}?offset=${tail}&live=long-poll`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await fetch(ds, { method: "POST", headers: { "content-type": "text/plain" }, body: "permitted" })).status).toBe(204);
      const woken = await waiting;
      expect([woken.status, await woken.text()]).toEqual([200, "permitted"]);

      // A TypeScript processor as the processor user: consumes, reacts, maintains indexes.
      const processor = await runProcessor(
        { name: "permitted-echo", triggers: ["ping"], initialState: () => null, reduce: () => null, react: () => [{ type: "pong" }] },
        { NATS_URL: server.url, NATS_USER: "processor", NATS_PASSWORD: passwords.PROCESSOR_PASSWORD },
      );
      stops.unshift(() => processor.stop());
      await request(`${gw.url}/streams${path}`, { body: { type: "ping" } });
      await waitFor(async () => ((await readAll(gw.url, path)).some((e) => e.type === "pong") ? true : undefined), 10_000, "pong");
      // ...and follows a stream while it works on it (an interrupt watch): woken by the stored event's subject.
      const followed: string[] = [];
      const stored = await readAll(gw.url, path);
      const stopFollowing = await followStream(processor.nats, parseStreamPath(path), stored.at(-1)?.offset ?? 0, (event) => followed.push(event.type), processor.logger);
      stops.unshift(() => {
        stopFollowing();
        return Promise.resolve();
      });
      await request(`${gw.url}/streams${path}`, { body: { type: "interrupt-me" } });
      await waitFor(() => Promise.resolve(followed.includes("interrupt-me") ? true : undefined), 10_000, "the followed event");

      // The Go tool owner as its own user: settles a tool call on an agent stream.
      const binary = await buildGoTools();
      const go = spawn(binary, [], { env: { ...process.env, NATS_URL: `nats://go-tools:${passwords.GO_TOOLS_PASSWORD}@127.0.0.1:${server.port}` }, stdio: ["ignore", "ignore", "pipe"] });
      let goLog = "";
      go.stderr.on("data", (chunk: Buffer) => (goLog += chunk.toString()));
      stops.unshift(async () => {
        go.kill("SIGTERM");
        await new Promise((resolve) => go.once("exit", resolve));
      });
      await waitFor(() => Promise.resolve(goLog.includes("processor running") ? true : undefined), 15_000, "go-tools running");
      await request(`${gw.url}/streams${path}`, { body: { type: "agent/tool-call-requested", payload: { requestOffset: 1, callId: "c1", name: "calculate", arguments: '{"expression":"2+3"}' } } });
      const settled = await waitFor(async () => (await readAll(gw.url, path)).find((e: EventEnvelope) => e.type === "agent/tool-call-settled"), 15_000, "tool settled");
      expect(settled.payload).toEqual({ callId: "c1", result: { value: 5 } });

      // ...and nothing else, each user refused by the server itself (a timeout would not do: it proves nothing).
      const as = async (user: "gateway" | "processor" | "go-tools", password: string): Promise<NatsConnection> => {
        const nc = await connect({ servers: server.url, user, pass: password });
        stops.unshift(() => nc.close());
        return nc;
      };
      // The gateway may not touch the indexes processors own (the scheduler's, the webhook pusher's).
      const asGateway = await as("gateway", passwords.GATEWAY_PASSWORD);
      await expectPublishRefused(asGateway, "$KV.agentmesh-schedules.forged");
      await expectPublishRefused(asGateway, "$KV.agentmesh-webhook-subscriptions.forged");
      // A processor may not write Durable Streams data (the gateway's), nor listen to them.
      const asProcessor = await as("processor", passwords.PROCESSOR_PASSWORD);
      await expectPublishRefused(asProcessor, "durable.forged");
      await expectSubscribeRefused(asProcessor, "durable-changes.>");
      // The go-tools user may not write outside /agents, nor read other consumers, nor listen to the log.
      const asGoTools = await as("go-tools", passwords.GO_TOOLS_PASSWORD);
      const refused = await jetstream(asGoTools, { timeout: 5_000 }).publish("events.billing.invoices", "forged").then(() => undefined, (e: unknown) => e);
      expectViolation(refused, "publish", "events.billing.invoices");
      await expectPublishRefused(asGoTools, "$JS.API.CONSUMER.INFO.EVENTS.processor-llm");
      await expectSubscribeRefused(asGoTools, "events.>");
      // Nothing any of them was refused reached the log.
      expect((await request(`${gw.url}/streams/billing/invoices`)).status).toBe(404);
      const stranger = await connect({ servers: server.url, user: "nobody", pass: "wrong" }).then(
        () => "connected",
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      expect(stranger).toMatch(/authorization/i);
    } finally {
      for (const stop of stops) await stop();
    }
  }, 90_000);
});
