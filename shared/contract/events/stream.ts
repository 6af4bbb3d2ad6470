import { z } from "zod";
import { StoredWebhookSecretSchema } from "../credentials.js";
import { AgentEventTypes, SystemEventTypes } from "../wire.js";
import { BudgetConfiguredSchema, McpServersConfiguredSchema } from "./agent.js";

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

/** The fork's own first word after its inherited history (docs/ARCHITECTURE.md, "Forks"). */
export const StreamForkedSchema = z.object({
  /** The stream forked from, and the offset there of the last inherited event. */
  from: z.string(),
  at: z.number().int().positive(),
  /** How many events were inherited: the fork's events before this one. */
  events: z.number().int().positive(),
  /** Whether the source's webhook subscriptions deliver the fork's events too. */
  subscriptions: z.boolean(),
});

export type StreamPaused = z.infer<typeof StreamPausedSchema>;
export type StreamForked = z.infer<typeof StreamForkedSchema>;
export type StreamResumed = z.infer<typeof StreamResumedSchema>;
export type BreakerConfigured = z.infer<typeof BreakerConfiguredSchema>;
export type ErrorOccurred = z.infer<typeof ErrorOccurredSchema>;

export const InboundConfiguredSchema = z.object({
  /** A Standard Webhooks secret (`whsec_` + base64); absent or null turns verification off. */
  secret: StoredWebhookSecretSchema.nullable().optional(),
});

export const WebhookReceivedSchema = z.object({
  contentType: z.string().nullable(),
  headers: z.record(z.string(), z.string()),
  /** JSON bodies as JSON, text as a string, anything else as base64. */
  bodyEncoding: z.enum(["json", "text", "base64", "empty"]),
  body: z.unknown(),
});

export type InboundConfigured = z.infer<typeof InboundConfiguredSchema>;
export type WebhookReceived = z.infer<typeof WebhookReceivedSchema>;

/**
 * Payloads checked when they are appended, strictly (unknown fields refused): a misshaped one would otherwise
 * be stored and silently change nothing, or turn a check off (`{"secrets": ...}` for `{"secret": ...}` left a
 * stream's webhooks unsigned).
 */
export const CheckedPayloadSchemas: Readonly<Record<string, z.ZodType>> = {
  [SystemEventTypes.inboundConfigured]: InboundConfiguredSchema.strict(),
  [SystemEventTypes.breakerConfigured]: BreakerConfiguredSchema.strict(),
  [AgentEventTypes.mcpServersConfigured]: McpServersConfiguredSchema.strict(),
  [AgentEventTypes.budgetConfigured]: BudgetConfiguredSchema.strict(),
};
