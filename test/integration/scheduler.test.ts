import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { eventsSubject, parseStreamPath, type StreamPath } from "../../shared/contract/subjects.js";
import { Kvm } from "@nats-io/kv";
import { SCHEDULE_BUCKET, scheduleKey, type ScheduleEntry } from "../../processors/scheduler/schedule-index.js";
import { buildScheduler } from "../../processors/scheduler/service.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll, runBuiltProcessor, uniqueName, waitFor } from "../support/processors.js";

let gw: TestGateway;
const root = uniquePath("sched");
const name = uniqueName("scheduler");
let replicas: RunningProcessor[] = [];
const startReplica = () => runBuiltProcessor(name, (deps) => buildScheduler(deps, { name, filterSubject: `${eventsSubject(parseStreamPath(root))}.>` }));

beforeAll(async () => {
  gw = await startGateway();
  replicas = await Promise.all([startReplica(), startReplica(), startReplica()]);
});
afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await gw.close();
});

const append = (path: string, body: unknown) => request(`${gw.url}/streams${path}`, { body });
const fired = async (path: string, type: string) => (await readAll(gw.url, path)).filter((e) => e.type === type);
const scheduledFor = (e: EventEnvelope) => String(e.metadata?.scheduledFor);

/** Wait until the schedule index (what every replica's timers follow) says this about a schedule. */
async function indexed(path: string, slug: string, holds: (entry: ScheduleEntry) => boolean, what: string): Promise<ScheduleEntry> {
  const index = await new Kvm(gw.nats.js).open(SCHEDULE_BUCKET);
  return waitFor(async () => {
    const entry = (await index.get(scheduleKey(path as StreamPath, slug)))?.json<ScheduleEntry>();
    return entry !== undefined && holds(entry) ? entry : undefined;
  }, 10_000, `schedule ${slug} ${what}`);
}

describe("scheduler (3 replicas)", () => {
  it("fires a one-off schedule once, within 1 s of its due time, marked with source and schedule metadata", async () => {
    const path = `${root}/once`;
    const added = await append(path, { type: "schedule/added", payload: { slug: "ping", append: { type: "agent/ping", payload: { n: 1 } }, schedule: { kind: "in", seconds: 1 } } });
    expect(added.status).toBe(201);
    const [event] = await waitFor(async () => {
      const list = await fired(path, "agent/ping");
      return list.length > 0 ? list : undefined;
    }, 10_000);
    const addedAt = Date.parse((added.body as EventEnvelope).createdAt);
    expect(Date.parse(scheduledFor(event as EventEnvelope))).toBe(addedAt + 1000);
    const delay = Date.parse(event?.createdAt ?? "") - (addedAt + 1000);
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(1000);
    expect(event).toMatchObject({ payload: { n: 1 }, metadata: { scheduleSlug: "ping" }, source: { processor: name, causationOffset: (added.body as EventEnvelope).offset } });
    // Done, not re-armed: no replica has it due any more (replicas that fired it too stored nothing: one key per due time).
    await indexed(path, "ping", (entry) => entry.nextDueMs === null, "done");
    expect(await fired(path, "agent/ping")).toHaveLength(1);
  });

  it("fires an every-schedule once per due time, replaces it on re-add, and stops on cancel", async () => {
    const path = `${root}/every`;
    await append(path, { type: "schedule/added", payload: { slug: "beat", append: { type: "heartbeat" }, schedule: { kind: "every", seconds: 1 } } });
    const beats = await waitFor(async () => {
      const list = await fired(path, "heartbeat");
      return list.length >= 3 ? list : undefined;
    }, 10_000);
    const times = beats.map(scheduledFor);
    expect(new Set(times).size).toBe(times.length);
    await append(path, { type: "schedule/added", payload: { slug: "beat", append: { type: "heartbeat-v2" }, schedule: { kind: "every", seconds: 1 } } });
    await waitFor(async () => ((await fired(path, "heartbeat-v2")).length >= 1 ? true : undefined), 5_000);
    await append(path, { type: "schedule/cancelled", payload: { slug: "beat" } });
    await indexed(path, "beat", (entry) => entry.definition === null, "cancelled");
    const cancelledSeenAt = Date.now();
    // A later one-off on the same stream, due after the beat's next due time: once it has fired and is done, the
    // replicas' timers have gone past that time, and the cancelled beat fired nothing due after the cancellation.
    await append(path, { type: "schedule/added", payload: { slug: "marker", append: { type: "marker" }, schedule: { kind: "in", seconds: 1.5 } } });
    await waitFor(async () => ((await fired(path, "marker")).length === 1 ? true : undefined), 10_000, "marker fired");
    await indexed(path, "marker", (entry) => entry.nextDueMs === null, "done");
    const allBeats = (await readAll(gw.url, path)).filter((e) => e.type.startsWith("heartbeat"));
    expect(allBeats.filter((e) => Date.parse(scheduledFor(e)) > cancelledSeenAt)).toEqual([]);
  });

  it("after downtime fires a missed run once, not a burst", async () => {
    const path = `${root}/downtime`;
    await append(path, { type: "schedule/added", payload: { slug: "tick", append: { type: "tick" }, schedule: { kind: "every", seconds: 1 } } });
    await waitFor(async () => ((await fired(path, "tick")).length >= 1 ? true : undefined), 5_000);
    await Promise.all(replicas.map((r) => r.stop()));
    const before = (await fired(path, "tick")).length;
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    expect((await fired(path, "tick")).length).toBe(before);
    const restartedAt = Date.now();
    replicas = await Promise.all([startReplica(), startReplica(), startReplica()]);
    // The catch-up run, then one due after the restart: the catch-up is behind us.
    const afterRestart = await waitFor(async () => {
      const ticks = (await fired(path, "tick")).slice(before);
      return ticks.some((e) => Date.parse(scheduledFor(e)) >= restartedAt) ? ticks : undefined;
    }, 10_000, "a tick due after the restart");
    // One catch-up run for the three missed seconds, then the regular rhythm (due times after the restart).
    const catchUp = afterRestart.filter((e) => Date.parse(scheduledFor(e)) < restartedAt);
    expect(catchUp).toHaveLength(1);
    expect(afterRestart.length).toBeGreaterThanOrEqual(2);
    const times = afterRestart.map(scheduledFor);
    expect(new Set(times).size).toBe(times.length);
  });

  it("keeps firing on time with 10,000 pending schedules", async () => {
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    for (let s = 0; s < 10; s++) {
      const batch = Array.from({ length: 1000 }, (_, i) => ({ type: "schedule/added", payload: { slug: `far-${i}`, append: { type: "far" }, schedule: { kind: "at", at: tomorrow } } }));
      expect((await append(`${root}/many-${s}`, batch)).status).toBe(201);
    }
    const path = `${root}/soon`;
    // Wait until the scheduler has indexed the backlog, so the next schedule competes with all of it.
    const index = await new Kvm(gw.nats.js).open(SCHEDULE_BUCKET);
    await waitFor(async () => ((await index.status()).values >= 10_000 ? true : undefined), 30_000, "10,000 schedules indexed");
    const added = await append(path, { type: "schedule/added", payload: { slug: "soon", append: { type: "soon" }, schedule: { kind: "in", seconds: 2 } } });
    const [event] = await waitFor(async () => {
      const list = await fired(path, "soon");
      return list.length > 0 ? list : undefined;
    }, 20_000);
    const dueMs = Date.parse((added.body as EventEnvelope).createdAt) + 2000;
    expect(Date.parse(event?.createdAt ?? "") - dueMs).toBeLessThan(1000);
  }, 60_000);
});
