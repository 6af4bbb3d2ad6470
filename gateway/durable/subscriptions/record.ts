import { createHash } from "node:crypto";
import { z } from "zod";

/**
 * A Durable Streams subscription as the gateway keeps it: one record per
 * subscription in the KV bucket `agentmesh-ds-subscriptions`, so that its
 * configuration, its streams' acked offsets and its wake (generation, lease)
 * change together, by compare-and-set, whichever gateway replica changes them.
 * Paths here are the protocol's (`events/a`, no leading slash).
 */

/** The body of `PUT __ds/subscriptions/{id}` (the reference server's `subscription-routes.ts`). */
export const SubscriptionRequestSchema = z
  .object({
    type: z.enum(["webhook", "pull-wake"]),
    pattern: z.string().min(1).max(1024).optional(),
    streams: z.array(z.string().min(1).max(1024)).max(1000).optional(),
    webhook: z.object({ url: z.url({ protocol: /^https?$/ }) }).optional(),
    wake_stream: z.string().min(1).max(1024).optional(),
    lease_ttl_ms: z.number().int().min(1000).max(600_000).default(30_000),
    description: z.string().max(1024).optional(),
  })
  .refine((body) => body.pattern !== undefined || (body.streams?.length ?? 0) > 0, "pattern or streams is required")
  .refine((body) => body.type !== "webhook" || body.webhook !== undefined, "a webhook subscription needs webhook.url")
  .refine((body) => body.type !== "pull-wake" || body.wake_stream !== undefined, "a pull-wake subscription needs wake_stream");
export type SubscriptionRequest = z.infer<typeof SubscriptionRequestSchema>;

export const SubscriptionConfigSchema = z.object({
  type: z.enum(["webhook", "pull-wake"]),
  pattern: z.string().nullable(),
  streams: z.array(z.string()),
  webhookUrl: z.string().nullable(),
  wakeStream: z.string().nullable(),
  leaseTtlMs: z.number().int(),
  description: z.string().nullable(),
});
export type SubscriptionConfig = z.infer<typeof SubscriptionConfigSchema>;

export const LinkTypeSchema = z.enum(["explicit", "glob"]);
export type LinkType = z.infer<typeof LinkTypeSchema>;

/** A stream the subscription follows: why (explicit, glob or both) and how far it is acked (`-1`: nothing yet). */
export const LinkSchema = z.object({ types: z.array(LinkTypeSchema), acked: z.string() });
export type Link = z.infer<typeof LinkSchema>;

/**
 * The current wake. `generation` only grows: a token or a body naming another generation (or another wake id) is
 * fenced. `snapshot` is the tails when the wake was created (what a synchronous `done` acks). `holder` is the
 * worker holding the lease (`webhook` for a webhook delivery) until `leaseUntil`; `nextAttemptAt` a webhook retry.
 */
export const WakeSchema = z.object({
  generation: z.number().int().nonnegative(),
  wakeId: z.string().nullable(),
  snapshot: z.record(z.string(), z.string()).nullable(),
  holder: z.string().nullable(),
  leaseUntil: z.number().nullable(),
  retryCount: z.number().int().nonnegative(),
  nextAttemptAt: z.number().nullable(),
});
export type Wake = z.infer<typeof WakeSchema>;

export const SubscriptionRecordSchema = z.object({
  id: z.string(),
  config: SubscriptionConfigSchema,
  configHash: z.string(),
  /** The gateway's public origin when the subscription was made: the dispatcher has no request to take it from. */
  baseUrl: z.string(),
  createdAt: z.string(),
  status: z.enum(["active", "failed"]),
  links: z.record(z.string(), LinkSchema),
  wake: WakeSchema,
});
export type SubscriptionRecord = z.infer<typeof SubscriptionRecordSchema>;

export function configOf(body: SubscriptionRequest): SubscriptionConfig {
  return {
    type: body.type,
    pattern: body.pattern ?? null,
    streams: [...new Set(body.streams ?? [])].sort(),
    webhookUrl: body.webhook?.url ?? null,
    wakeStream: body.wake_stream ?? null,
    leaseTtlMs: body.lease_ttl_ms,
    description: body.description ?? null,
  };
}

/** Same hash, same subscription: a repeated PUT is answered 200; another configuration is a conflict (409). */
export function stableConfigHash(config: SubscriptionConfig): string {
  const canonical = [config.type, config.pattern, config.streams, config.webhookUrl, config.wakeStream, config.leaseTtlMs, config.description];
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex");
}

export const IDLE_WAKE: Wake = { generation: 0, wakeId: null, snapshot: null, holder: null, leaseUntil: null, retryCount: 0, nextAttemptAt: null };
