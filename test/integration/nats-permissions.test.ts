import { spawn } from "node:child_process";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { buildGoTools } from "../../deploy/local/go-tools.js";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import type { EventEnvelope } from "../../shared/envelope.js";
import { request, startGateway } from "../support/gateway.js";
import { readAll, runProcessor, waitFor } from "../support/processors.js";

const root = join(import.meta.dirname, "../..");
const passwords = { GATEWAY_PASSWORD: "gateway-pw", PROCESSOR_PASSWORD: "processor-pw", GO_TOOLS_PASSWORD: "go-tools-pw" };

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

      // ...and nothing else: the go-tools user may not write outside /agents, nor read other consumers.
      const intruder = await connect({ servers: server.url, user: "go-tools", pass: passwords.GO_TOOLS_PASSWORD });
      stops.unshift(() => intruder.close());
      await expect(jetstream(intruder, { timeout: 1000 }).publish("events.billing.invoices", "forged")).rejects.toThrow();
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
