import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningProcessor } from "../../processors/runtime/run-processor.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { runProcessor, uniqueName, waitFor } from "../support/processors.js";

/**
 * Indexes converge from the log (issue 17): a pause stored by a writer that died before recording it in the pause
 * index (simulated by publishing it straight to the stream's subject, as such a writer's last act) is recorded by
 * a processor that reads it, and every gateway refuses appends to the stream from then on.
 */
let gw: TestGateway;
let other: TestGateway;
let reader: RunningProcessor;
const root = uniquePath("repair");

beforeAll(async () => {
  gw = await startGateway();
  other = await startGateway();
  // Any processor reads the log; this one reacts to nothing it will be sent here.
  reader = await runProcessor({ name: uniqueName("reader"), triggers: ["never/sent"], filterSubject: `${eventsSubject(parseStreamPath(root))}.>`, initialState: () => null, reduce: () => null, react: () => [] });
});
afterAll(async () => {
  await reader.stop();
  await Promise.all([gw.close(), other.close()]);
});

describe("indexes converge from the log", () => {
  it("records a pause whose writer never recorded it, and every gateway refuses appends within 2 s", async () => {
    const path = `${root}/orphaned-pause`;
    expect((await request(`${gw.url}/streams${path}`, { body: { type: "note" } })).status).toBe(201);
    await gw.nats.js.publish(eventsSubject(parseStreamPath(path)), JSON.stringify({ type: "stream/paused", payload: { reason: "stored by a writer that died" }, createdAt: new Date().toISOString() }));
    const storedAt = performance.now();
    for (const gateway of [gw, other]) {
      const refusedAfter = await waitFor(async () => {
        const reply = await request(`${gateway.url}/streams${path}`, { body: { type: "note" } });
        return reply.status === 423 ? performance.now() - storedAt : undefined;
      }, 10_000, "appends refused");
      expect(refusedAfter).toBeLessThan(2_000);
    }
    // The bucket has it too: a gateway started now refuses at once.
    const late = await startGateway();
    try {
      expect((await request(`${late.url}/streams${path}`, { body: { type: "note" } })).status).toBe(423);
    } finally {
      await late.close();
    }
  });
});
