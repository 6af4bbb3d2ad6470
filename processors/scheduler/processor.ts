import { TerminalError } from "../runtime/errors.js";
import type { Processor } from "../runtime/runtime.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { ScheduleAddedSchema, ScheduleCancelledSchema } from "../../shared/contract/events/schedules.js";
import { ScheduleEventTypes, ProcessorNames } from "../../shared/contract/wire.js";
import { firstDue, validateSchedule } from "./schedule.js";
import type { ScheduleIndex } from "./schedule-index.js";

export const SCHEDULER_NAME = ProcessorNames.scheduler;

/**
 * Indexes schedule/added and schedule/cancelled into the schedule index
 * (re-adding a slug replaces it); ScheduleTimers fires what is due. It starts
 * from the beginning of the log so no schedule is missed, whenever it started.
 */
export function schedulerProcessor(index: ScheduleIndex): Processor<null> {
  return {
    name: SCHEDULER_NAME,
    triggers: [ScheduleEventTypes.added, ScheduleEventTypes.cancelled],
    startFrom: "all",
    initialState: () => null,
    reduce: () => null,
    react: async ({ event, log }) => {
      const path = event.streamPath as StreamPath;
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
