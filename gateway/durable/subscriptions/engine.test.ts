import { describe, expect, it } from "vitest";
import { formatOffset } from "../offsets.js";
import { acknowledge, addLink, autoAck, BEFORE_START, claim, createWake, deliveryFailed, expire, hasPendingWork, release, removeLinkType, retryDelayMs, takeRetry } from "./engine.js";
import { globMatches, globPrefix } from "./glob.js";
import { IDLE_WAKE, stableConfigHash, type SubscriptionConfig, type SubscriptionRecord } from "./record.js";
import { SubscriptionKeys } from "./signing.js";

const config = (type: SubscriptionConfig["type"]): SubscriptionConfig => ({ type, pattern: "events/*", streams: [], webhookUrl: type === "webhook" ? "http://127.0.0.1/hook" : null, wakeStream: type === "pull-wake" ? "wake/pool" : null, leaseTtlMs: 1000, description: null });
const record = (type: SubscriptionConfig["type"] = "pull-wake"): SubscriptionRecord => ({ id: "s", config: config(type), configHash: "h", baseUrl: "http://x", createdAt: "", status: "active", links: { "events/a": { types: ["glob"], acked: formatOffset(5) } }, wake: IDLE_WAKE });
const at = (seq: number) => ({ "events/a": formatOffset(seq) });

describe("subscription engine", () => {
  it("opens a wake only when work is pending and none is open", () => {
    expect(createWake(record(), at(5), 0)).toEqual(record());
    const woken = createWake(record(), at(7), 0, "w_1");
    expect(woken.wake).toMatchObject({ generation: 1, wakeId: "w_1", holder: null, snapshot: at(7) });
    expect(createWake(woken, at(9), 0)).toBe(woken);
  });

  it("holds a webhook wake by its delivery, with a lease", () => {
    expect(createWake(record("webhook"), at(7), 100).wake).toMatchObject({ holder: "webhook", leaseUntil: 1100 });
  });

  it("treats a newly linked stream's first data as pending, an empty one as not", () => {
    const linked = addLink({ ...record(), links: {} }, "events/b", "glob", BEFORE_START);
    expect(hasPendingWork(linked, { "events/b": formatOffset(0) })).toBe(false);
    expect(hasPendingWork(linked, { "events/b": formatOffset(1) })).toBe(true);
  });

  it("claims the open wake once: a second worker is refused while the lease holds, and takes it after", () => {
    const first = claim(record(), "w1", at(7), 0);
    if (first.kind !== "claimed") throw new Error(first.kind);
    expect(claim(first.record, "w2", at(7), 500)).toEqual({ kind: "busy", holder: "w1", generation: 1 });
    const later = claim(first.record, "w2", at(7), 2000);
    expect(later.kind).toBe("claimed");
    if (later.kind === "claimed") expect(later.record.wake).toMatchObject({ holder: "w2", generation: 2 });
    expect(claim(record(), "w1", at(5), 0).kind).toBe("idle");
  });

  it("fences stale generations and wake ids, and refuses acks outside acked..tail", () => {
    const claimed = claim(record(), "w1", at(7), 0);
    if (claimed.kind !== "claimed") throw new Error(claimed.kind);
    const wake = { wake_id: claimed.record.wake.wakeId ?? "", generation: 1 };
    expect(() => acknowledge(claimed.record, 0, wake, at(7), 0)).toThrow(expect.objectContaining({ code: "FENCED" }) as Error);
    expect(() => acknowledge(claimed.record, 1, { ...wake, wake_id: "w_other" }, at(7), 0)).toThrow(expect.objectContaining({ code: "FENCED" }) as Error);
    for (const offset of [formatOffset(8), formatOffset(4), BEFORE_START]) {
      expect(() => acknowledge(claimed.record, 1, { ...wake, acks: [{ stream: "events/a", offset }] }, at(7), 0)).toThrow(expect.objectContaining({ code: "INVALID_OFFSET" }) as Error);
    }
    expect(() => acknowledge(claimed.record, 1, { ...wake, acks: [{ stream: "events/zz", offset: formatOffset(6) }] }, at(7), 0)).toThrow(expect.objectContaining({ code: "INVALID_OFFSET" }) as Error);
    const renewed = acknowledge(claimed.record, 1, { ...wake, acks: [{ stream: "events/a", offset: formatOffset(6) }] }, at(7), 500);
    expect(renewed.wake.leaseUntil).toBe(1500);
    expect(renewed.links["events/a"]?.acked).toBe(formatOffset(6));
    const done = acknowledge(renewed, 1, { ...wake, acks: [{ stream: "events/a", offset: formatOffset(7) }], done: true }, at(7), 600);
    expect(done.wake).toMatchObject({ wakeId: null, holder: null, generation: 1 });
    expect(() => acknowledge(done, 1, { ...wake, done: true }, at(7), 700)).toThrow(expect.objectContaining({ code: "FENCED" }) as Error);
    expect(release(renewed, 1, wake).wake.wakeId).toBeNull();
  });

  it("expires a lease, auto-acks a snapshot, and retries a failed delivery with backoff", () => {
    const woken = createWake(record("webhook"), at(7), 0, "w_1");
    expect(expire(woken, 999)).toBe(woken);
    expect(expire(woken, 1000).wake).toMatchObject({ wakeId: null, holder: null, generation: 1 });
    expect(autoAck(woken, 1, "w_1").links["events/a"]?.acked).toBe(formatOffset(7));
    expect(autoAck(woken, 2, "w_1")).toBe(woken);
    const failed = deliveryFailed(woken, 1, "w_1", 0);
    expect(failed.status).toBe("failed");
    expect(failed.wake.nextAttemptAt).toBeGreaterThanOrEqual(800);
    expect(takeRetry(failed, 0)).toBe(failed);
    expect(takeRetry(failed, 1200).wake).toMatchObject({ holder: "webhook", nextAttemptAt: null });
    expect(retryDelayMs(1, 0)).toBe(800);
    expect(retryDelayMs(30, 1)).toBe(60_000);
  });

  it("removes only the explicit reason of a link", () => {
    const both = addLink(record(), "events/a", "explicit", BEFORE_START);
    expect(removeLinkType(both, "events/a", "explicit").links["events/a"]?.types).toEqual(["glob"]);
    expect(removeLinkType(removeLinkType(both, "events/a", "explicit"), "events/a", "glob").links["events/a"]).toBeUndefined();
  });
});

describe("globs, hashes and keys", () => {
  it("matches * as one segment and ** as any, never the reserved tree", () => {
    expect(globMatches("events/*", "events/a")).toBe(true);
    expect(globMatches("events/*", "events/a/b")).toBe(false);
    expect(globMatches("events/**", "events/a/b")).toBe(true);
    expect(globMatches("**", "__ds/x")).toBe(false);
    expect(globPrefix("events/*/x")).toBe("events");
    expect(globPrefix("**")).toBeNull();
  });

  it("hashes a configuration the same whatever the order of its streams", () => {
    const a = { ...config("webhook"), streams: ["a", "b"] };
    expect(stableConfigHash(a)).toBe(stableConfigHash({ ...a, streams: ["a", "b"] }));
    expect(stableConfigHash(a)).not.toBe(stableConfigHash({ ...a, leaseTtlMs: 2000 }));
  });

  it("verifies its own tokens only, and reports expiry", () => {
    const keys = new SubscriptionKeys([{ id: "k", key: Buffer.alloc(32, 1) }]);
    const other = new SubscriptionKeys([{ id: "k", key: Buffer.alloc(32, 2) }]);
    const token = keys.mintToken("s", 3, 0);
    expect(keys.verifyToken(token, "s", 0).epoch).toBe(3);
    expect(() => other.verifyToken(token, "s", 0)).toThrow(expect.objectContaining({ code: "TOKEN_INVALID" }) as Error);
    expect(() => keys.verifyToken(token, "t", 0)).toThrow(expect.objectContaining({ code: "TOKEN_INVALID" }) as Error);
    expect(() => keys.verifyToken(token, "s", 3_601_000)).toThrow(expect.objectContaining({ code: "TOKEN_EXPIRED" }) as Error);
    expect(keys.kid).toMatch(/^ds_/);
    expect(keys.jwks().keys[0]?.kid).toBe(keys.kid);
  });
});
