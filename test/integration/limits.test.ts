import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll, waitFor } from "../support/processors.js";
import { openSse } from "../support/sse.js";

let gw: TestGateway;
/** A gateway without limits on the same NATS, to read the log back: a client is its IP here, so the limited gateway would refuse the reads too. */
let open: TestGateway;
beforeAll(async () => {
  open = await startGateway();
  gw = await startGateway({ RATE_LIMIT_PER_SECOND: "20", SSE_MAX_CONNECTIONS_PER_CLIENT: "2", GATEWAY_MAX_BATCH_EVENTS: "10", GATEWAY_BODY_LIMIT_BYTES: "2048" });
});
afterAll(async () => {
  await gw.close();
  await open.close();
});

describe("limits, each with a clear error", () => {
  it("limits requests per second per client with 429 RATE_LIMITED and Retry-After, and not health checks", async () => {
    const path = uniquePath();
    const replies = await Promise.all(Array.from({ length: 30 }, () => request(`${gw.url}/streams${path}`, { body: { type: "t" } })));
    const limited = replies.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(10);
    // Refused means not stored: the log holds exactly the appends answered 201 (read through the open gateway).
    const accepted = replies.filter((r) => r.status === 201);
    expect(accepted.length + limited.length).toBe(30);
    const byOffset = (a: EventEnvelope, b: EventEnvelope) => a.offset - b.offset;
    expect(await readAll(open.url, path)).toEqual(accepted.map((r) => r.body as EventEnvelope).sort(byOffset));
    expect(limited[0]?.body).toMatchObject({ error: { code: "RATE_LIMITED" } });
    expect(limited[0]?.headers.get("retry-after")).toBeTruthy();
    const health = await Promise.all(Array.from({ length: 30 }, () => request(`${gw.url}/healthz`)));
    expect(health.every((r) => r.status === 200)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1100));
  });

  it("limits live SSE connections per client with 429 TOO_MANY_CONNECTIONS, and frees the slot on disconnect", async () => {
    const path = uniquePath();
    const first = await openSse(`${gw.url}/streams${path}?live=sse`);
    const second = await openSse(`${gw.url}/streams${path}?live=sse`);
    const third = await request(`${gw.url}/streams${path}?live=sse`);
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({ error: { code: "TOO_MANY_CONNECTIONS" } });
    first.abort();
    await first.ended;
    // The gateway frees the slot when it sees the socket close: a moment after the client's abort.
    const again = await waitFor(async () => {
      const attempt = await openSse(`${gw.url}/streams${path}?live=sse`);
      if (attempt.status === 200) return attempt;
      attempt.abort();
      return undefined;
    }, 5_000, "the slot freed");
    expect(again.status).toBe(200);
    second.abort();
    again.abort();
  });

  it("limits events per batch and body size", async () => {
    const path = uniquePath();
    expect((await request(`${gw.url}/streams${path}`, { body: Array.from({ length: 11 }, () => ({ type: "t" })) })).body).toMatchObject({ error: { code: "BATCH_TOO_LARGE" } });
    const big = await request(`${gw.url}/streams${path}`, { body: { type: "t", payload: "x".repeat(3000) } });
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
    expect(await readAll(open.url, path)).toEqual([]);
  });
});
