import { z } from "zod";
import { SealedValueSchema, StoredWebhookSecretSchema } from "../credentials.js";
import { SlugSchema } from "./schedules.js";

/** The webhook pusher's events (docs/EVENTS.md, "Webhooks out"). */

/** By default every event is pushed except the pusher's own, which would otherwise loop. */
export const DEFAULT_EXCLUDED_TYPES = ["subscription/*"] as const;

export const SubscriptionConfiguredSchema = z.object({
  slug: SlugSchema,
  /** Stored sealed (it may carry a credential); an http or https URL once opened. */
  url: z.union([SealedValueSchema, z.url({ protocol: /^https?$/, message: "an http or https URL" })]),
  /** Glob patterns over event types (`agent/*`); default: all but subscription/*. */
  types: z.array(z.string().min(1)).min(1).optional(),
  /** Standard Webhooks secret (`whsec_` + base64), stored sealed: deliveries are signed when set. */
  secret: StoredWebhookSecretSchema.optional(),
});

export const SubscriptionRemovedSchema = z.object({ slug: SlugSchema });

export type SubscriptionConfigured = z.infer<typeof SubscriptionConfiguredSchema>;
