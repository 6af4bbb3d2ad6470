import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { Kvm } from "@nats-io/kv";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { SCHEDULE_BUCKET, scheduleKey } from "../../processors/scheduler/schedule-index.js";
import { buildScheduler } from "../../processors/scheduler/service.js";
import { request, startGateway, uniquePath } from "../support/gateway.js";
import { readAll, runBuiltProcessor, waitFor } from "../support/processors.js";

describe("scheduler restarts", () => {
  it("keeps schedules across a restart of the scheduler and of NATS", async () => {
    const storeDir = mkdtempSync(join(tmpdir(), "agentmesh-sched-"));
    let server = await startNatsServer({ storeDir });
    const env = { NATS_URL: server.url };
    const gw = await startGateway(env);
    let scheduler = await runBuiltProcessor("scheduler", (deps) => buildScheduler(deps), env);
    try {
      const path = uniquePath("restart");
      const added = await request<EventEnvelope>(`${gw.url}/streams${path}`, { body: { type: "schedule/added", payload: { slug: "later", append: { type: "wake-up" }, schedule: { kind: "in", seconds: 4 } } } });
      expect(added.status).toBe(201);
      // Once the scheduler has indexed it, take everything down but the store.
      const index = await new Kvm(gw.nats.js).open(SCHEDULE_BUCKET);
      await waitFor(async () => ((await index.get(scheduleKey(path as StreamPath, "later"))) === null ? undefined : true), 10_000, "schedule indexed");
      await scheduler.stop();
      await server.stop();
      server = await startNatsServer({ storeDir, port: server.port });
      scheduler = await runBuiltProcessor("scheduler", (deps) => buildScheduler(deps), env);
      const [woke] = await waitFor(async () => {
        const list = (await readAll(gw.url, path)).filter((e) => e.type === "wake-up");
        return list.length > 0 ? list : undefined;
      }, 15_000, "wake-up fired");
      expect(Date.parse(woke?.createdAt ?? "") - (Date.parse(added.body.createdAt) + 4000)).toBeLessThan(1000);
    } finally {
      await scheduler.stop();
      await gw.close();
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    }
  }, 60_000);
});
