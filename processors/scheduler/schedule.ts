import { Cron } from "croner";
import type { Schedule } from "../../shared/contract/events/schedules.js";

/**
 * When a schedule is due, pure. `addedAtMs` is the schedule/added event's
 * createdAt: `in` and `every` count from it, so every replica computes the same
 * due times from the log.
 */

/** Throws on a cron expression or time zone croner does not accept. */
export function validateSchedule(schedule: Schedule): void {
  if (schedule.kind !== "cron") return;
  // croner accepts any zone name and fails later; Intl knows the IANA database.
  if (schedule.timezone !== undefined) new Intl.DateTimeFormat("en", { timeZone: schedule.timezone });
  cronOf(schedule);
}

function cronOf(schedule: Extract<Schedule, { kind: "cron" }>): Cron {
  return new Cron(schedule.cron, { paused: true, ...(schedule.timezone === undefined ? {} : { timezone: schedule.timezone }) });
}

/** The first due time of a schedule. */
export function firstDue(schedule: Schedule, addedAtMs: number): number | null {
  switch (schedule.kind) {
    case "at":
      return Date.parse(schedule.at);
    case "in":
      return addedAtMs + schedule.seconds * 1000;
    case "every":
      return addedAtMs + schedule.seconds * 1000;
    case "cron":
      return cronOf(schedule).nextRun(new Date(addedAtMs))?.getTime() ?? null;
  }
}

/**
 * The next due time after a run that was due at `dueMs`, skipping every time
 * already past at `nowMs`: after downtime a schedule fires once, not once per
 * missed time. Null when the schedule is done.
 */
export function nextDue(schedule: Schedule, dueMs: number, nowMs: number): number | null {
  switch (schedule.kind) {
    case "at":
    case "in":
      return null;
    case "every": {
      const intervalMs = schedule.seconds * 1000;
      const skipped = Math.max(0, Math.floor((nowMs - dueMs) / intervalMs));
      return dueMs + (skipped + 1) * intervalMs;
    }
    case "cron":
      return cronOf(schedule).nextRun(new Date(Math.max(dueMs, nowMs)))?.getTime() ?? null;
  }
}
