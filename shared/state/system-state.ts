import type { EventEnvelope } from "../contract/envelope.js";
import { StreamPausedSchema } from "../contract/events/stream.js";
import { MetadataKeys, SystemEventTypes } from "../contract/wire.js";
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
  /**
   * When the stream's last event is a part of a decision still being stored (metadata.batch, not its last part):
   * its time. A decision made now would not see the rest (docs/EVENTS.md, "The decide-and-append loop").
   */
  unfinishedBatchAt: string | null;
}

export function initialSystemState(): SystemState {
  return { paused: null, reactedTo: RecentOffsets.empty(REMEMBERED_REACTIONS), unfinishedBatchAt: null };
}

function isUnfinishedPart(event: EventEnvelope): boolean {
  const batch = event.metadata?.[MetadataKeys.batch];
  if (typeof batch !== "object" || batch === null) return false;
  const { index, of } = batch as { index?: unknown; of?: unknown };
  return typeof index === "number" && typeof of === "number" && index < of - 1;
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
  const unfinishedBatchAt = isUnfinishedPart(event) ? event.createdAt : null;
  if (unfinishedBatchAt !== next.unfinishedBatchAt) next = { ...next, unfinishedBatchAt };
  return next;
}
