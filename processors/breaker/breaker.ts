import type { EventEnvelope, EventInput } from "../../shared/envelope.js";
import { BreakerConfiguredSchema } from "../../shared/system-events.js";
import { SystemEventTypes } from "../../shared/wire.js";

/**
 * The circuit breaker's domain logic, pure: a token bucket per stream whose
 * clock is the events' own `createdAt`, so every replica that reduces the same
 * log reaches the same verdict at the same offset.
 */

export interface BreakerLimits {
  maxEventsPerSecond: number;
  burst: number;
}

export interface BreakerState {
  limits: BreakerLimits;
  tokens: number;
  lastMs: number | null;
  /** Times (ms) of the events in the last second, for the rate reported when tripping. */
  recent: number[];
  /** The first event over the limit since the stream was last resumed. */
  tripped: { offset: number; rate: number } | null;
}

/** Control events do not count as load: pausing or configuring must never trip the breaker. */
const NOT_COUNTED: ReadonlySet<string> = new Set([SystemEventTypes.paused, SystemEventTypes.resumed, SystemEventTypes.breakerConfigured]);

export function initialBreakerState(limits: BreakerLimits): BreakerState {
  return { limits, tokens: limits.burst, lastMs: null, recent: [], tripped: null };
}

export function reduceBreaker(state: BreakerState, event: EventEnvelope): BreakerState {
  if (event.type === SystemEventTypes.resumed) return { ...initialBreakerState(state.limits), lastMs: state.lastMs };
  if (event.type === SystemEventTypes.breakerConfigured) {
    const configured = BreakerConfiguredSchema.safeParse(event.payload);
    if (!configured.success) return state;
    return { ...state, limits: configured.data, tokens: Math.min(state.tokens, configured.data.burst) };
  }
  if (NOT_COUNTED.has(event.type)) return state;

  const now = Date.parse(event.createdAt);
  const elapsedMs = state.lastMs === null ? 0 : Math.max(0, now - state.lastMs);
  const refilled = Math.min(state.limits.burst, state.tokens + (elapsedMs / 1000) * state.limits.maxEventsPerSecond);
  const recent = state.recent.filter((t) => now - t < 1000);
  recent.push(now);
  const over = refilled < 1;
  return {
    limits: state.limits,
    tokens: over ? refilled : refilled - 1,
    lastMs: Math.max(now, state.lastMs ?? now),
    recent,
    tripped: state.tripped ?? (over ? { offset: event.offset, rate: recent.length } : null),
  };
}

/** What the breaker appends: one stream/paused per trip, keyed by the offset that tripped it. */
export function breakerReaction(state: BreakerState, paused: boolean): EventInput[] {
  if (state.tripped === null || paused) return [];
  const { offset, rate } = state.tripped;
  return [
    {
      type: SystemEventTypes.paused,
      payload: {
        reason: `circuit breaker: more than ${state.limits.maxEventsPerSecond} events/s (burst ${state.limits.burst})`,
        rate,
        triggerOffset: offset,
      },
      // Deterministic across replicas and redeliveries: one trip, one pause.
      idempotencyKey: `breaker:paused:${offset}`,
    },
  ];
}
