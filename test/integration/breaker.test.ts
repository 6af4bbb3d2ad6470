import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningProcessor } from "../../shared/processor-main.js";
import type { Processor } from "../../shared/processor-runtime.js";
import { eventsSubject, parseStreamPath } from "../../shared/subjects.js";
import { breakerProcessor } from "../../processors/breaker/processor.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll, runProcessor, uniqueName, waitFor } from "../support/processors.js";

/** Reacts to every `from` event with a `to` event: two of these feed each other forever. */
function echo(name: string, from: string, to: string): Processor<null> {
  return { name, triggers: [from], initialState: () => null, reduce: () => null, react: () => [{ type: to }] };
}

let gw: TestGateway;
const running: RunningProcessor[] = [];
const root = uniquePath("breaker");

beforeAll(async () => {
  gw = await startGateway();
  const filterSubject = `${eventsSubject(parseStreamPath(root))}.>`;
  running.push(
    await runProcessor({ ...breakerProcessor({ maxEventsPerSecond: 100, burst: 100 }), name: uniqueName("breaker"), filterSubject }),
    await runProcessor({ ...echo(uniqueName("ping"), "loop/pong", "loop/ping"), filterSubject }),
    await runProcessor({ ...echo(uniqueName("pong"), "loop/ping", "loop/pong"), filterSubject }),
  );
});
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await gw.close();
});

describe("circuit breaker", () => {
  it("pauses a runaway loop within 1 s of crossing the limit, lets at most 200 events past it, and resumes on a person's word", async () => {
    const path = `${root}/loop`;
    expect((await request(`${gw.url}/streams${path}`, { body: { type: "loop/ping" } })).status).toBe(201);

    const paused = await waitFor(async () => (await readAll(gw.url, path)).find((e) => e.type === "stream/paused"), 20_000, "stream/paused");
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const events = await readAll(gw.url, path);
    const { triggerOffset, rate } = paused.payload as { triggerOffset: number; rate: number };
    const trigger = events.find((e) => e.offset === triggerOffset);
    expect(trigger).toBeDefined();
    expect(rate).toBeGreaterThan(100);
    const pausedAfterMs = Date.parse(paused.createdAt) - Date.parse(trigger?.createdAt ?? "");
    const pastLimit = events.filter((e) => e.offset > triggerOffset && e.type !== "stream/paused").length;
    expect(pausedAfterMs).toBeLessThanOrEqual(1_000);
    expect(pastLimit).toBeLessThanOrEqual(200);
    expect(events.filter((e) => e.type === "stream/paused")).toHaveLength(1);
    // The loop has stopped: nothing more lands.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await readAll(gw.url, path)).toHaveLength(events.length);
    process.stdout.write(`breaker: tripped at offset ${triggerOffset} (${rate} events/s), paused ${pausedAfterMs} ms later, ${pastLimit} events past the limit\n`);

    const refused = await request(`${gw.url}/streams${path}`, { body: { type: "note" } });
    expect(refused.status).toBe(423);
    expect(refused.body).toMatchObject({ error: { code: "STREAM_PAUSED" } });
    expect((await request(`${gw.url}/streams${path}?ephemeral=true`, { body: { type: "note" } })).status).toBe(423);

    const resumed = await request(`${gw.url}/streams${path}/resume`, { body: { reason: "looked into it" } });
    expect(resumed.status).toBe(201);
    expect(resumed.body).toMatchObject({ type: "stream/resumed", payload: { reason: "looked into it" } });
    expect((await request(`${gw.url}/streams${path}`, { body: { type: "note" } })).status).toBe(201);
    expect((await request(`${gw.url}/streams${path}/resume`, { body: {} })).status).toBe(409);
  }, 60_000);

  it("lets a stream configure its own limit", async () => {
    const path = `${root}/strict`;
    await request(`${gw.url}/streams${path}`, { body: { type: "stream/circuit-breaker-configured", payload: { maxEventsPerSecond: 5, burst: 5 } } });
    const burst = await request(`${gw.url}/streams${path}`, { body: Array.from({ length: 20 }, () => ({ type: "work" })) });
    expect(burst.status).toBe(201);
    const paused = await waitFor(async () => (await readAll(gw.url, path)).find((e) => e.type === "stream/paused"), 10_000, "stream/paused");
    expect(paused.payload).toMatchObject({ reason: expect.stringContaining("5 events/s") as unknown });
    await waitFor(async () => ((await request(`${gw.url}/streams${path}`, { body: { type: "late" } })).status === 423 ? true : undefined), 5_000, "423");
  });
});
