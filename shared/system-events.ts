import { z } from "zod";

/** Payload schemas of the events the mesh itself writes (docs/EVENTS.md, "Event types"). */

export const StreamPausedSchema = z.object({
  reason: z.string().min(1),
  /** Events per second measured when the breaker tripped. */
  rate: z.number().nonnegative().optional(),
  /** The offset at which the limit was crossed. */
  triggerOffset: z.number().int().positive().optional(),
});

export const StreamResumedSchema = z.object({
  reason: z.string().optional(),
});

export const BreakerConfiguredSchema = z.object({
  maxEventsPerSecond: z.number().positive(),
  burst: z.number().int().positive(),
});

export const ErrorOccurredSchema = z.object({
  processor: z.string(),
  message: z.string(),
  offset: z.number().int().positive(),
});

export type StreamPaused = z.infer<typeof StreamPausedSchema>;
export type StreamResumed = z.infer<typeof StreamResumedSchema>;
export type BreakerConfigured = z.infer<typeof BreakerConfiguredSchema>;
export type ErrorOccurred = z.infer<typeof ErrorOccurredSchema>;
