import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { request, startGateway, uniquePath } from "../support/gateway.js";
import { openSse } from "../support/sse.js";

describe("NATS outage", () => {
  it("answers 503 NATS_UNAVAILABLE at once while NATS is down and recovers by itself, losing nothing acknowledged, live tails included", async () => {
    const storeDir = mkdtempSync(join(tmpdir(), "agentmesh-outage-"));
    let server = await startNatsServer({ storeDir });
    const port = server.port;
    // Without a hold (APPEND_HOLD_MS=0): what a client sees of an outage longer than the hold.
    const gw = await startGateway({ NATS_URL: server.url, APPEND_HOLD_MS: "0" });
    try {
      const path = uniquePath();
      const before = await request<EventEnvelope>(`${gw.url}/streams${path}`, { body: { type: "before" } });
      expect(before.status).toBe(201);
      const tail = await openSse(`${gw.url}/streams${path}?live=sse`);
      await tail.waitFor((m) => m.length === 1);

      // A crash, not a shutdown: the server's consumers are gone when it comes back.
      await server.kill();
      await waitUntil(async () => (await request(`${gw.url}/readyz`)).status === 503);
      for (const attempt of [
        () => request(`${gw.url}/streams${path}`, { body: { type: "during" } }),
        () => request(`${gw.url}/streams${path}`),
        () => request(`${gw.url}/streams?prefix=${path}`),
        () => request(`${gw.url}/streams${path}?live=sse`),
      ]) {
        const started = Date.now();
        const reply = await attempt();
        expect(Date.now() - started).toBeLessThan(1_000);
        expect(reply.status).toBe(503);
        expect(reply.body).toMatchObject({ error: { code: "NATS_UNAVAILABLE" } });
      }

      // Down long enough for the client to notice missed heartbeats, as a real outage would be.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      server = await startNatsServer({ storeDir, port });
      const restarted = Date.now();
      await waitUntil(async () => (await request(`${gw.url}/streams${path}`, { body: { type: "after" } })).status === 201, 10_000);
      expect(Date.now() - restarted).toBeLessThan(5_000);
      const history = await request<{ events: EventEnvelope[] }>(`${gw.url}/streams${path}`);
      expect(history.body.events.map((e) => e.type)).toEqual(["before", "after"]);
      expect(history.body.events[0]).toEqual(before.body);
      // The live tail opened before the outage carries on, on the same connection. Left to itself, its consumer
      // delivered for a few seconds after the restart, then went silent for about 40 s.
      const later: string[] = [];
      for (let i = 0; i < 40; i++) {
        await request(`${gw.url}/streams${path}`, { body: { type: `later-${i}` } });
        later.push(`later-${i}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await tail.waitFor((m) => m.length === 2 + later.length, 3_000);
      expect(tail.messages.map((m) => (m.data as EventEnvelope).type)).toEqual(["before", "after", ...later]);
      tail.abort();
    } finally {
      await gw.close();
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    }
  }, 60_000);

  it("says on /readyz when the events stream is missing, apart from NATS being down", async () => {
    const storeDir = mkdtempSync(join(tmpdir(), "agentmesh-outage-"));
    const server = await startNatsServer({ storeDir });
    const gw = await startGateway({ NATS_URL: server.url });
    try {
      expect((await request(`${gw.url}/readyz`)).status).toBe(200);
      await gw.nats.jsm.streams.delete(gw.nats.streamName);
      await waitUntil(async () => (await request<{ stream?: string }>(`${gw.url}/readyz`)).body.stream === "missing", 5_000);
      await server.kill();
      await waitUntil(async () => (await request<{ nats?: string }>(`${gw.url}/readyz`)).body.nats === "disconnected", 5_000);
    } finally {
      await gw.close();
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    }
  }, 30_000);

  it("holds an append made while NATS is down and stores it once NATS is back (APPEND_HOLD_MS)", async () => {
    const storeDir = mkdtempSync(join(tmpdir(), "agentmesh-outage-"));
    let server = await startNatsServer({ storeDir });
    const port = server.port;
    const gw = await startGateway({ NATS_URL: server.url });
    try {
      const path = uniquePath();
      expect((await request(`${gw.url}/streams${path}`, { body: { type: "before" } })).status).toBe(201);
      await server.kill();
      await waitUntil(async () => (await request(`${gw.url}/readyz`)).status === 503);
      const started = Date.now();
      const held = request<EventEnvelope>(`${gw.url}/streams${path}`, { body: { type: "during" } });
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      server = await startNatsServer({ storeDir, port });
      const reply = await held;
      expect(reply.status).toBe(201);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
      const page = await request<{ events: EventEnvelope[] }>(`${gw.url}/streams${path}`);
      expect(page.body.events.map((e) => e.type)).toEqual(["before", "during"]);
    } finally {
      await gw.close();
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    }
  }, 60_000);
});

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
