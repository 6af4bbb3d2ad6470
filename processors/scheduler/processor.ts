import { TerminalError } from "../runtime/errors.js";
import type { Processor } from "../runtime/runtime.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { ScheduleAddedSchema, ScheduleCancelledSchema } from "../../shared/contract/events/schedules.js";
import { ScheduleEventTypes, ProcessorNames, SystemEventTypes } from "../../shared/contract/wire.js";
import { initialSchedules, schedulesReducer, type ScheduleView, type SchedulesState } from "../../shared/state/schedules.js";
import { firstDue, nextDue, validateSchedule } from "./schedule.js";
import type { ScheduleIndex } from "./schedule-index.js";

export const SCHEDULER_NAME = ProcessorNames.scheduler;

/**
 * When an inherited schedule is next due in a fork, from the fork on (docs/ARCHITECTURE.md, "Forks"): `in` counts
 * again from the fork, `at` keeps its time (at once if it passed unfired), `every` and `cron` keep their times from
 * now on; a one-shot that fired, or a cancelled schedule, never.
 */
function dueInFork(view: ScheduleView, forkedAtMs: number, nowMs: number): number | null {
  if (view.cancelledAt !== null || view.done) return null;
  const { schedule } = view;
  if (schedule.kind === "in") return forkedAtMs + schedule.seconds * 1000;
  const first = firstDue(schedule, Date.parse(view.addedAt.createdAt));
  if (first === null || schedule.kind === "at" || first > nowMs) return first;
  return nextDue(schedule, first, nowMs);
}

async function indexInherited(index: ScheduleIndex, state: SchedulesState, forked: EventEnvelope): Promise<number> {
  const path = forked.streamPath as StreamPath;
  const now = Date.now();
  let armed = 0;
  for (const view of Object.values(state.schedules)) {
    // Only what the fork inherited: a schedule added in the fork itself was indexed when it was added.
    if (view.addedAt.offset > forked.offset) continue;
    const nextDueMs = dueInFork(view, Date.parse(forked.createdAt), now);
    if (nextDueMs === null) continue;
    await index.applyFromLog({ path, slug: view.slug, definition: { append: view.append, schedule: view.schedule }, offset: view.addedAt.offset, nextDueMs });
    armed += 1;
  }
  return armed;
}

/**
 * Indexes schedule/added and schedule/cancelled into the schedule index
 * (re-adding a slug replaces it); ScheduleTimers fires what is due. It starts
 * from the beginning of the log so no schedule is missed, whenever it started.
 * A fork's schedules are indexed when its stream/forked arrives, from the fork's state.
 */
export function schedulerProcessor(index: ScheduleIndex, name: string = SCHEDULER_NAME): Processor<SchedulesState> {
  return {
    name,
    triggers: [ScheduleEventTypes.added, ScheduleEventTypes.cancelled, SystemEventTypes.forked],
    startFrom: "all",
    initialState: initialSchedules,
    // Its own firings are what make a one-shot done: counted under the name it runs as.
    reduce: schedulesReducer(name),
    // An index: a schedule added before a pause is indexed even if the pause came first (firing is refused meanwhile).
    skipWhilePaused: false,
    react: async ({ event, stream, log }) => {
      const path = event.streamPath as StreamPath;
      if (event.type === SystemEventTypes.forked) {
        log.info({ schedules: await indexInherited(index, stream.state, event) }, "inherited schedules indexed");
        return [];
      }
      if (event.type === ScheduleEventTypes.cancelled) {
        const cancelled = ScheduleCancelledSchema.safeParse(event.payload);
        if (!cancelled.success) throw new TerminalError(`invalid ${event.type}: ${cancelled.error.issues[0]?.message ?? ""}`);
        await index.applyFromLog({ path, slug: cancelled.data.slug, definition: null, offset: event.offset, nextDueMs: null });
        log.info({ slug: cancelled.data.slug }, "schedule cancelled");
        return [];
      }
      const added = ScheduleAddedSchema.safeParse(event.payload);
      if (!added.success) throw new TerminalError(`invalid ${event.type}: ${added.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
      try {
        validateSchedule(added.data.schedule);
      } catch (err) {
        throw new TerminalError(`invalid schedule: ${err instanceof Error ? err.message : String(err)}`);
      }
      const nextDueMs = firstDue(added.data.schedule, Date.parse(event.createdAt));
      const definition = { append: { type: added.data.append.type, payload: added.data.append.payload }, schedule: added.data.schedule };
      await index.applyFromLog({ path, slug: added.data.slug, definition, offset: event.offset, nextDueMs });
      log.info({ slug: added.data.slug, nextDue: nextDueMs === null ? null : new Date(nextDueMs).toISOString() }, "schedule indexed");
      return [];
    },
  };
}
