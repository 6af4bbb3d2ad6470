import type { EventInput } from "../../shared/contract/envelope.js";
import { SystemEventTypes } from "../../shared/contract/wire.js";
import type { BreakerState } from "../../shared/state/breaker.js";

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
