import type { EventEnvelope } from "../contract/envelope.js";
import { BreakerConfiguredSchema } from "../contract/events/stream.js";
import { SystemEventTypes } from "../contract/wire.js";

/**
 * The circuit breaker's domain logic, pure: a token bucket per stream whose
 * clock is the events' own `createdAt`, so every replica that reduces the same
 * log reaches the same verdict at the same offset.
 */

export interface BreakerLimits {
  maxEventsPerSecond: number;
  burst: number;
}

/** The limits a stream has until it is configured otherwise (BREAKER_MAX_EVENTS_PER_SECOND, BREAKER_BURST). */
export const DEFAULT_BREAKER_LIMITS: BreakerLimits = { maxEventsPerSecond: 100, burst: 100 };

export interface BreakerState {
  limits: BreakerLimits;
  tokens: number;
  lastMs: number | null;
  /** Times (ms) of the events in the last second, for the rate reported when tripping. */
  recent: RecentTimes;
  /** The first event over the limit since the stream was last resumed. */
  tripped: { offset: number; rate: number } | null;
}

/**
 * Not load: pausing or configuring must never trip the breaker, and inbound webhooks are outside input that
 * the gateway admits at its own per-stream limit (a flood gets 429 there), so a third party cannot pause a
 * stream by posting to it. What the stream's processors do in reply still counts.
 */
const NOT_COUNTED: ReadonlySet<string> = new Set([SystemEventTypes.paused, SystemEventTypes.resumed, SystemEventTypes.breakerConfigured, SystemEventTypes.webhookReceived]);

/** The bucket at `nowMs` under the limits it has had until then. */
function refill(state: BreakerState, nowMs: number): number {
  const elapsedMs = state.lastMs === null ? 0 : Math.max(0, nowMs - state.lastMs);
  return Math.min(state.limits.burst, state.tokens + (elapsedMs / 1000) * state.limits.maxEventsPerSecond);
}

/**
 * The times of the events in the last second, oldest first, as a value successive states share (as RecentOffsets
 * does): adding to the newest costs O(1) amortised. Filtering a copied array on every event cost O(events in the
 * last second) each, quadratic under a flood: 100,000 events stored in one burst took ~50 s to fold.
 */
export class RecentTimes {
  private constructor(
    private readonly backing: number[],
    private readonly start: number,
    private readonly end: number,
  ) {}

  static empty(): RecentTimes {
    return new RecentTimes([], 0, 0);
  }

  get count(): number {
    return this.end - this.start;
  }

  /** The window once an event at `nowMs` is in it: times a second or more before it drop out (times arrive in order). */
  add(nowMs: number): RecentTimes {
    // Only the newest value may grow the shared array; an older one copies its window first.
    let backing = this.backing;
    let start = this.start;
    let end = this.end;
    if (backing.length !== end) {
      backing = backing.slice(start, end);
      start = 0;
      end = backing.length;
    }
    while (start < end && nowMs - (backing[start] as number) >= 1000) start++;
    if (start > 1024 && start > end - start) {
      backing = backing.slice(start, end);
      end -= start;
      start = 0;
    }
    backing.push(nowMs);
    return new RecentTimes(backing, start, end + 1);
  }
}

export function initialBreakerState(limits: BreakerLimits): BreakerState {
  return { limits, tokens: limits.burst, lastMs: null, recent: RecentTimes.empty(), tripped: null };
}

/**
 * The event's time on the breaker's clock. A `createdAt` that is not a time (a foreign writer's) counts as the last
 * known one: the event is still load, and the bucket never turns NaN (which would never trip again).
 */
function clockOf(state: BreakerState, event: EventEnvelope): number {
  const parsed = Date.parse(event.createdAt);
  return Number.isNaN(parsed) ? (state.lastMs ?? 0) : parsed;
}

export function reduceBreaker(state: BreakerState, event: EventEnvelope): BreakerState {
  if (event.type === SystemEventTypes.resumed) return { ...initialBreakerState(state.limits), lastMs: state.lastMs };
  if (event.type === SystemEventTypes.breakerConfigured) {
    const configured = BreakerConfiguredSchema.safeParse(event.payload);
    if (!configured.success) return state;
    // The wait until now is credited at the old rate, and a larger burst is granted at once: raising the
    // limits must let the next burst of the new size through.
    const now = clockOf(state, event);
    const tokens = refill(state, now) + Math.max(0, configured.data.burst - state.limits.burst);
    return { ...state, limits: configured.data, tokens: Math.min(tokens, configured.data.burst), lastMs: Math.max(now, state.lastMs ?? now) };
  }
  if (NOT_COUNTED.has(event.type)) return state;

  const now = clockOf(state, event);
  const refilled = refill(state, now);
  const recent = state.recent.add(now);
  const over = refilled < 1;
  return {
    limits: state.limits,
    tokens: over ? refilled : refilled - 1,
    lastMs: Math.max(now, state.lastMs ?? now),
    recent,
    tripped: state.tripped ?? (over ? { offset: event.offset, rate: recent.count } : null),
  };
}
