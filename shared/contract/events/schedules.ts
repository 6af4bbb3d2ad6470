import { z } from "zod";
import { EventTypeSchema } from "../envelope.js";

/** The scheduler's events (docs/EVENTS.md, "Schedules"). */

/** Slugs are KV-key-safe so the schedule index can use them as the last key token. */
export const SlugSchema = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "1 to 128 of A-Z a-z 0-9 _ -");

export const ScheduleSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("at"), at: z.iso.datetime({ offset: true }) }),
  z.object({ kind: z.literal("in"), seconds: z.number().positive() }),
  z.object({ kind: z.literal("every"), seconds: z.number().min(1) }),
  z.object({ kind: z.literal("cron"), cron: z.string().min(1), timezone: z.string().min(1).optional() }),
]);

export const ScheduleAddedSchema = z.object({
  slug: SlugSchema,
  append: z.object({ type: EventTypeSchema, payload: z.unknown().default({}) }),
  schedule: ScheduleSchema,
});

export const ScheduleCancelledSchema = z.object({ slug: SlugSchema });

export type Schedule = z.infer<typeof ScheduleSchema>;
export type ScheduleAdded = z.infer<typeof ScheduleAddedSchema>;
