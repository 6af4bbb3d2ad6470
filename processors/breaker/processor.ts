import { ProcessorNames } from "../../shared/contract/wire.js";
import { breakerTrips } from "../../shared/service/metrics.js";
import type { Processor } from "../runtime/runtime.js";
import { initialBreakerState, reduceBreaker, type BreakerLimits, type BreakerState } from "../../shared/state/breaker.js";
import { breakerReaction } from "./reaction.js";

export const BREAKER_NAME = ProcessorNames.breaker;

/** Watches every event of every stream and pauses a stream that goes over its limit. */
export function breakerProcessor(limits: BreakerLimits): Processor<BreakerState> {
  return {
    name: BREAKER_NAME,
    triggers: ["**"],
    initialState: () => initialBreakerState(limits),
    reduce: reduceBreaker,
    react: ({ stream }) => {
      const reaction = breakerReaction(stream.state, stream.system.paused !== null);
      if (reaction.length > 0) breakerTrips.inc();
      return reaction;
    },
    // A runaway stream moves too fast for conditional appends; the pause is keyed by its trigger offset instead.
    serialiseDecisions: false,
    // It reacts to every event; a burst read once serves the burst's events (its pause repeats harmlessly).
    decideOnCachedState: true,
  };
}
