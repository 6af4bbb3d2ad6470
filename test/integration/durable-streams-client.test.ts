import { DurableStream, stream, type JsonBatch } from "@durable-streams/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll, waitFor } from "../support/processors.js";

/**
 * The protocol's own TypeScript client (`@durable-streams/client`) against an
 * agent stream: it reads the envelopes that `POST /streams/<path>` appends,
 * live, in both live modes, with offsets in the protocol's form whose second
 * half is the event's JetStream sequence; and what it appends lands as events.
 */

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ DURABLE_LONG_POLL_TIMEOUT_MS: "1000" });
});
afterAll(async () => {
  await gw.close();
});

const protocolOffset = (offset: number): string => `0000000000000000_${String(offset).padStart(16, "0")}`;

async function appendEvents(path: string, events: unknown[]): Promise<EventEnvelope[]> {
  const reply = await request<EventEnvelope[]>(`${gw.url}/streams${path}`, { body: events });
  if (reply.status !== 201) throw new Error(`append failed: ${reply.status} ${JSON.stringify(reply.body)}`);
  return reply.body;
}

describe("@durable-streams/client reading an agent stream", () => {
  for (const live of ["sse", "long-poll"] as const) {
    it(`catches up and follows live appends over ${live}`, async () => {
      const path = uniquePath("ds-client");
      const history = await appendEvents(path, [{ type: "agent/input-added", payload: { content: "one" } }, { type: "agent/input-added", payload: { content: "two" } }]);

      const abort = new AbortController();
      const response = await stream<EventEnvelope>({ url: `${gw.url}/v1/stream${path}`, offset: "-1", live, signal: abort.signal });
      const batches: JsonBatch<EventEnvelope>[] = [];
      const unsubscribe = response.subscribeJson((batch) => {
        batches.push(batch);
      });
      try {
        expect(response.contentType).toBe("application/json");
        await waitFor(() => Promise.resolve(batches.flatMap((b) => b.items).length >= 2 ? true : undefined), 10_000, "the history");

        const appended: EventEnvelope[] = [];
        for (let i = 0; i < 5; i++) {
          appended.push(...(await appendEvents(path, [{ type: "agent/llm-response", payload: { content: `live ${i}` } }])));
          // Spaced out, so each append reaches a reader already waiting live.
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const all = [...history, ...appended];
        await waitFor(() => Promise.resolve(batches.flatMap((b) => b.items).length >= all.length ? true : undefined), 10_000, "the live events");

        expect(batches.flatMap((b) => b.items)).toEqual(all);
        expect(batches.at(-1)?.offset).toBe(protocolOffset(all.at(-1)?.offset ?? -1));
        // Every batch ends at the offset of its last event; offsets sort as strings.
        let seen = 0;
        for (const batch of batches) {
          seen += batch.items.length;
          if (batch.items.length > 0) expect(batch.offset).toBe(protocolOffset(all[seen - 1]?.offset ?? -1));
        }
        const offsets = batches.map((b) => b.offset);
        expect([...offsets].sort()).toEqual(offsets);
      } finally {
        unsubscribe();
        response.cancel();
        abort.abort();
      }
    });
  }

  it("resumes from a saved offset and sees only what came after it", async () => {
    const path = uniquePath("ds-client");
    const events = await appendEvents(path, Array.from({ length: 4 }, (_, i) => ({ type: "tick", payload: { i } })));
    const saved = protocolOffset(events[1]?.offset ?? 0);
    const response = await stream<EventEnvelope>({ url: `${gw.url}/v1/stream${path}`, offset: saved, live: false });
    expect(await response.json()).toEqual(events.slice(2));
  });

  it("appends through a DurableStream handle as events of the agent stream", async () => {
    const path = uniquePath("ds-client");
    await appendEvents(path, [{ type: "agent/input-added", payload: { content: "hi" } }]);
    const handle = new DurableStream({ url: `${gw.url}/v1/stream${path}`, contentType: "application/json" });
    await handle.append(JSON.stringify({ type: "agent/tool-called", payload: { name: "search" } }));

    const events = await readAll(gw.url, path);
    expect(events.map((e) => e.type)).toEqual(["agent/input-added", "agent/tool-called"]);
    expect(events[1]?.payload).toEqual({ name: "search" });

    // An appended value that is not an event is refused, and nothing is stored.
    await expect(handle.append(JSON.stringify({ payload: "no type" }))).rejects.toThrow();
    expect(await readAll(gw.url, path)).toHaveLength(2);
  });
});
