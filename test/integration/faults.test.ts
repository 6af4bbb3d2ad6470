import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { request, startGateway, uniquePath } from "../support/gateway.js";
import { freePort } from "../support/ports.js";
import { readAll, uniqueName, waitFor, waitForConsumer, waitForSettledProcessor } from "../support/processors.js";
import { appendUnderLoad } from "../support/writers.js";

const root = join(import.meta.dirname, "../..");

/** Every acknowledged append is in the log at the offset it was acknowledged with, and no key is stored twice. */
function expectNothingLostNothingDoubled(events: EventEnvelope[], acknowledged: Map<string, number>): void {
  const byKey = new Map<string, number[]>();
  for (const event of events) byKey.set(event.idempotencyKey ?? "", [...(byKey.get(event.idempotencyKey ?? "") ?? []), event.offset]);
  for (const [key, offset] of acknowledged) expect(byKey.get(key), key).toEqual([offset]);
  expect([...byKey.values()].every((offsets) => offsets.length === 1)).toBe(true);
}

describe("faults survived", () => {
  it("restarting nats-server under steady append load: quick 503s, recovery within 5 s, nothing acknowledged lost", async () => {
    const storeDir = mkdtempSync(join(tmpdir(), "agentmesh-fault-"));
    let server = await startNatsServer({ storeDir });
    // Without a hold (APPEND_HOLD_MS=0): the quick 503s of an outage longer than the hold (cluster-failover.test.ts holds).
    const gw = await startGateway({ NATS_URL: server.url, APPEND_HOLD_MS: "0" });
    try {
      const path = uniquePath("fault");
      const load = appendUnderLoad({ baseUrl: () => gw.url, path, writers: 8, eventsPerWriter: 150, pauseMs: 5 });
      await new Promise((resolve) => setTimeout(resolve, 700));
      await server.stop();
      const downAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      server = await startNatsServer({ storeDir, port: server.port });
      const upAt = Date.now();
      const result = await load;
      const unavailable = result.failures.filter((f) => f.status === 503);
      expect(unavailable.length).toBeGreaterThan(0);
      // No hung requests: an append in flight when NATS died fails within the request timeout (2 s), the rest at once.
      expect(Math.max(...unavailable.map((f) => f.ms))).toBeLessThan(2_500);
      expect(result.failures.filter((f) => f.status !== 503)).toEqual([]);
      const events = await readAll(gw.url, path);
      expectNothingLostNothingDoubled(events, result.acknowledged);
      expect(result.acknowledged.size).toBe(8 * 150);
      const firstAfter = Math.min(...events.filter((e) => Date.parse(e.createdAt) > upAt).map((e) => Date.parse(e.createdAt)));
      expect(firstAfter - upAt).toBeLessThan(5_000);
      expect(upAt - downAt).toBeGreaterThan(1_000);
    } finally {
      await gw.close();
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    }
  }, 90_000);

  it("kill -9 of the gateway mid-load: after a restart, every acknowledged append is there and retries stored nothing twice", async () => {
    const port = await freePort();
    const env = { ...process.env, NATS_URL: inject("natsUrl"), GATEWAY_PORT: String(port), AUTH: "off", LOG_LEVEL: "error" };
    const startGatewayProcess = () => {
      const child = spawn(process.execPath, ["--import", "tsx", join(root, "gateway/main.ts")], { env, stdio: "ignore" });
      return { child, exited: new Promise((resolve) => child.once("exit", resolve)) };
    };
    const baseUrl = `http://127.0.0.1:${port}`;
    const waitReady = () => waitFor(async () => ((await fetch(`${baseUrl}/readyz`)).ok ? true : undefined), 20_000, "gateway ready");
    let gateway = startGatewayProcess();
    try {
      await waitReady();
      const path = uniquePath("crash");
      const load = appendUnderLoad({ baseUrl: () => baseUrl, path, writers: 8, eventsPerWriter: 100, pauseMs: 5 });
      await new Promise((resolve) => setTimeout(resolve, 600));
      gateway.child.kill("SIGKILL");
      await gateway.exited;
      gateway = startGatewayProcess();
      await waitReady();
      const result = await load;
      expect(result.failures.length).toBeGreaterThan(0);
      expect(result.acknowledged.size).toBe(800);
      expectNothingLostNothingDoubled(await readAll(baseUrl, path), result.acknowledged);
    } finally {
      gateway.child.kill("SIGKILL");
    }
  }, 90_000);

  it("kill -9 of one of 3 processor replicas under load: every event gets exactly one reaction", async () => {
    const gw = await startGateway();
    const replicas: ReturnType<typeof spawn>[] = [];
    try {
      const path = uniquePath("replicas");
      const name = uniqueName("worker");
      const env = {
        ...process.env,
        NATS_URL: inject("natsUrl"),
        LOG_LEVEL: "error",
        SLOW_WORKER_NAME: name,
        SLOW_WORKER_DELAY_MS: "20",
        SLOW_WORKER_FILTER: eventsSubject(parseStreamPath(path)),
        PROCESSOR_ACK_WAIT_MS: "2000",
      };
      for (let i = 0; i < 3; i++) replicas.push(spawn(process.execPath, ["--import", "tsx", join(root, "test/support/processes/slow-worker.ts")], { env, stdio: "ignore" }));
      await waitForConsumer(gw.nats, name);
      for (let batch = 0; batch < 10; batch++) {
        await request(`${gw.url}/streams${path}`, { body: Array.from({ length: 20 }, () => ({ type: "job/requested" })) });
        if (batch === 3) replicas[0]?.kill("SIGKILL");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const events = await waitFor(async () => {
        const all = await readAll(gw.url, path);
        return all.filter((e) => e.type === "job/done").length >= 200 ? all : undefined;
      }, 40_000, "200 reactions");
      // Not a sleep against the 2 s ack wait: wait until the consumer has nothing outstanding (the killed replica's
      // deliveries redelivered and acknowledged), so no late duplicate can come after the count.
      await waitForSettledProcessor(gw.nats, name, events.at(-1)?.offset ?? 0, 30_000);
      const settled = await readAll(gw.url, path);
      const done = settled.filter((e) => e.type === "job/done");
      const jobs = events.filter((e) => e.type === "job/requested").map((e) => e.offset);
      expect(done.map((e) => e.source?.causationOffset).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(jobs);
    } finally {
      for (const replica of replicas) replica.kill("SIGKILL");
      await gw.close();
    }
  }, 90_000);
});
