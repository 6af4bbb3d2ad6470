import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import type { EventEnvelope } from "../../shared/envelope.js";
import { request, startGateway, uniquePath } from "../support/gateway.js";

describe("NATS outage", () => {
  it("answers 503 NATS_UNAVAILABLE at once while NATS is down and recovers by itself, losing nothing acknowledged", async () => {
    const storeDir = mkdtempSync(join(tmpdir(), "agentmesh-outage-"));
    let server = await startNatsServer({ storeDir });
    const port = server.port;
    const gw = await startGateway({ NATS_URL: server.url });
    try {
      const path = uniquePath();
      const before = await request<EventEnvelope>(`${gw.url}/streams${path}`, { body: { type: "before" } });
      expect(before.status).toBe(201);

      await server.stop();
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

      server = await startNatsServer({ storeDir, port });
      const restarted = Date.now();
      await waitUntil(async () => (await request(`${gw.url}/streams${path}`, { body: { type: "after" } })).status === 201, 10_000);
      expect(Date.now() - restarted).toBeLessThan(5_000);
      const history = await request<{ events: EventEnvelope[] }>(`${gw.url}/streams${path}`);
      expect(history.body.events.map((e) => e.type)).toEqual(["before", "after"]);
      expect(history.body.events[0]).toEqual(before.body);
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
