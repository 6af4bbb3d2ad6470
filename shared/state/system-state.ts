import type { EventEnvelope } from "../contract/envelope.js";
import { StreamPausedSchema } from "../contract/events/stream.js";
import { SystemEventTypes } from "../contract/wire.js";
import { RecentOffsets } from "./recent-offsets.js";

/** How many of a processor's own reactions the state remembers to skip a redelivered event. */
const REMEMBERED_REACTIONS = 256;

/**
 * What every processor knows about a stream, reduced from the stream's own
 * events: whether it is paused, and which events this processor has already
 * reacted to (so a redelivery after the dedupe window still reacts once).
 */
export interface SystemState {
  paused: { reason: string; offset: number } | null;
  reactedTo: RecentOffsets;
}

export function initialSystemState(): SystemState {
  return { paused: null, reactedTo: RecentOffsets.empty(REMEMBERED_REACTIONS) };
}

export function reduceSystemState(state: SystemState, event: EventEnvelope, processor: string): SystemState {
  let next = state;
  if (event.type === SystemEventTypes.paused || event.type === SystemEventTypes.agentPaused) {
    const payload = StreamPausedSchema.safeParse(event.payload);
    next = { ...next, paused: { reason: payload.success ? payload.data.reason : "paused", offset: event.offset } };
  } else if (event.type === SystemEventTypes.resumed) {
    next = { ...next, paused: null };
  }
  if (event.source?.processor === processor) {
    next = { ...next, reactedTo: next.reactedTo.add(event.source.causationOffset) };
  }
  return next;
}
