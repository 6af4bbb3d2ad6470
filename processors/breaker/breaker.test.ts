import { describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { initialBreakerState, reduceBreaker, type BreakerState } from "../../shared/state/breaker.js";
import { breakerReaction } from "./reaction.js";

const start = Date.parse("2026-01-01T00:00:00.000Z");
let offset = 0;
function event(atMs: number, type = "agent/x", payload: unknown = {}): EventEnvelope {
  offset += 1;
  return { streamPath: "/s", offset, type, payload, createdAt: new Date(start + atMs).toISOString() };
}
function feed(state: BreakerState, times: number[], type?: string): BreakerState {
  return times.reduce((s, t) => reduceBreaker(s, event(t, type)), state);
}
const limits = { maxEventsPerSecond: 100, burst: 100 };

describe("circuit breaker", () => {
  it("lets a burst of 100 through, then trips on the 101st event in the same instant", () => {
    const burst = feed(initialBreakerState(limits), Array.from({ length: 100 }, () => 0));
    expect(burst.tripped).toBeNull();
    expect(breakerReaction(burst, false)).toEqual([]);
    const over = reduceBreaker(burst, event(0));
    expect(over.tripped).toEqual({ offset: over.tripped?.offset, rate: 101 });
    const [pause] = breakerReaction(over, false);
    expect(pause).toMatchObject({ type: "stream/paused", payload: { triggerOffset: over.tripped?.offset, rate: 101 }, idempotencyKey: `breaker:paused:${over.tripped?.offset}` });
  });

  it("counts an event whose createdAt is not a time as load at the last known time, and still trips", () => {
    const before = feed(initialBreakerState(limits), Array.from({ length: 50 }, () => 0));
    const garbled = (n: number): EventEnvelope => ({ streamPath: "/s", offset: 1000 + n, type: "agent/x", payload: {}, createdAt: "not a time" });
    const after = Array.from({ length: 60 }, (_, n) => garbled(n)).reduce(reduceBreaker, before);
    expect(Number.isNaN(after.tokens)).toBe(false);
    expect(after.tripped).not.toBeNull();
  });

  it("never trips at a steady 100 events/s", () => {
    const steady = feed(initialBreakerState(limits), Array.from({ length: 2000 }, (_, i) => i * 10));
    expect(steady.tripped).toBeNull();
  });

  it("trips at a steady 150 events/s once the burst is spent", () => {
    const fast = feed(initialBreakerState(limits), Array.from({ length: 1000 }, (_, i) => (i * 1000) / 150));
    expect(fast.tripped).not.toBeNull();
    // 100 tokens drain at 50/s net: about 2 s, so about 300 events in.
    expect(fast.tripped?.rate).toBeGreaterThanOrEqual(140);
  });

  it("does not react while paused, and a resume refills the bucket", () => {
    const tripped = feed(initialBreakerState(limits), Array.from({ length: 150 }, () => 0));
    expect(breakerReaction(tripped, true)).toEqual([]);
    const resumed = reduceBreaker(reduceBreaker(tripped, event(0, "stream/paused")), event(0, "stream/resumed"));
    expect(resumed.tripped).toBeNull();
    expect(resumed.tokens).toBe(100);
  });

  it("follows stream/circuit-breaker-configured, and control events are not load", () => {
    const configured = reduceBreaker(initialBreakerState(limits), event(0, "stream/circuit-breaker-configured", { maxEventsPerSecond: 5, burst: 5 }));
    expect(configured.limits).toEqual({ maxEventsPerSecond: 5, burst: 5 });
    expect(feed(configured, [0, 0, 0, 0, 0]).tripped).toBeNull();
    expect(feed(configured, [0, 0, 0, 0, 0, 0]).tripped).not.toBeNull();
    expect(feed(configured, Array.from({ length: 50 }, () => 0), "stream/resumed").tripped).toBeNull();
  });

  it("grants a raised burst at once: 1,000 events right after raising the limits do not trip it", () => {
    const raised = reduceBreaker(initialBreakerState(limits), event(0, "stream/circuit-breaker-configured", { maxEventsPerSecond: 1_000_000, burst: 1_000_000 }));
    expect(feed(raised, Array.from({ length: 1000 }, () => 1)).tripped).toBeNull();
    // Lowering them still takes effect at once.
    const lowered = reduceBreaker(initialBreakerState(limits), event(0, "stream/circuit-breaker-configured", { maxEventsPerSecond: 5, burst: 5 }));
    expect(feed(lowered, [1, 1, 1, 1, 1, 1]).tripped).not.toBeNull();
  });

  it("does not count inbound webhooks: a third party cannot pause a stream by posting to it", () => {
    expect(feed(initialBreakerState(limits), Array.from({ length: 500 }, () => 0), "webhook/received").tripped).toBeNull();
  });
});
