import type { EventEnvelope } from "../contract/envelope.js";
import { ScheduleAddedSchema, ScheduleCancelledSchema, type ScheduleAdded } from "../contract/events/schedules.js";
import { ProcessorNames, ScheduleEventTypes } from "../contract/wire.js";

/**
 * A stream's schedules as its log states them: what was added and not
 * cancelled, and what each has fired. The scheduler keeps the same facts in its
 * KV index to find what is due across every stream; this reducer is the log's
 * word on one stream, at any offset (the gateway's state API, the console).
 */
export interface ScheduleView {
  slug: string;
  schedule: ScheduleAdded["schedule"];
  append: ScheduleAdded["append"];
  addedAt: { offset: number; createdAt: string };
  cancelledAt: { offset: number; createdAt: string } | null;
  /** Events the scheduler appended for it (its `source.causationOffset` is the schedule/added offset). */
  fired: number;
  lastFiredAt: { offset: number; createdAt: string } | null;
  /** A one-shot schedule (`at`, `in`) that has fired: the scheduler is done with it. */
  done: boolean;
}

export interface SchedulesState {
  schedules: Record<string, ScheduleView>;
}

export function initialSchedules(): SchedulesState {
  return { schedules: {} };
}

/** The fold of a stream's schedules, counting as firings the events the scheduler named `schedulerName` appended. */
export function schedulesReducer(schedulerName: string = ProcessorNames.scheduler): (state: SchedulesState, event: EventEnvelope) => SchedulesState {
  return (state, event) => reduceWith(schedulerName, state, event);
}

export function reduceSchedules(state: SchedulesState, event: EventEnvelope): SchedulesState {
  return reduceWith(ProcessorNames.scheduler, state, event);
}

function reduceWith(schedulerName: string, state: SchedulesState, event: EventEnvelope): SchedulesState {
  const at = { offset: event.offset, createdAt: event.createdAt };
  if (event.type === ScheduleEventTypes.added) {
    const added = ScheduleAddedSchema.safeParse(event.payload);
    if (!added.success) return state;
    const { slug, schedule, append } = added.data;
    // Adding a slug again replaces it, as the scheduler does.
    return { schedules: { ...state.schedules, [slug]: { slug, schedule, append, addedAt: at, cancelledAt: null, fired: 0, lastFiredAt: null, done: false } } };
  }
  if (event.type === ScheduleEventTypes.cancelled) {
    const cancelled = ScheduleCancelledSchema.safeParse(event.payload);
    const current = cancelled.success ? state.schedules[cancelled.data.slug] : undefined;
    if (current === undefined || current.cancelledAt !== null) return state;
    return { schedules: { ...state.schedules, [current.slug]: { ...current, cancelledAt: at } } };
  }
  const cause = event.source?.causationOffset;
  if (event.source?.processor !== schedulerName || cause === undefined) return state;
  const fired = Object.values(state.schedules).find((view) => view.addedAt.offset === cause);
  if (fired === undefined) return state;
  const oneShot = fired.schedule.kind === "at" || fired.schedule.kind === "in";
  return { schedules: { ...state.schedules, [fired.slug]: { ...fired, fired: fired.fired + 1, lastFiredAt: at, done: fired.done || oneShot } } };
}
