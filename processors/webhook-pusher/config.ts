import { z } from "zod";
import { configFields, parseConfig } from "../../shared/service/config.js";
import { SecretKeysSchema } from "../../shared/log/secrets.js";

/** Svix's schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. */
const DEFAULT_RETRY_SCHEDULE_MS = "0,5000,300000,1800000,7200000,18000000,36000000,36000000";

export const webhookPusherConfigShape = {
  WEBHOOK_TIMEOUT_MS: configFields.positiveInt.default(15_000),
  /** Delay before each attempt, comma-separated ms; the count is the number of attempts. */
  WEBHOOK_RETRY_SCHEDULE_MS: z
    .string()
    .default(DEFAULT_RETRY_SCHEDULE_MS)
    .transform((value) => value.split(",").map((part) => Number(part.trim())))
    .pipe(z.array(z.number().int().nonnegative()).min(1)),
  /** ipaddr.js range names a webhook URL may reach besides the public internet (e.g. `loopback,private`). */
  WEBHOOK_ALLOWED_NETWORKS: z
    .string()
    .default("")
    .transform((value) => new Set(value.split(",").map((part) => part.trim()).filter((part) => part !== ""))),
  /** Opens the subscription secrets the gateway sealed (the gateway's SECRETS_KEYS). */
  SECRETS_KEYS: SecretKeysSchema.optional(),
} as const;

export function loadWebhookPusherConfig(env: NodeJS.ProcessEnv) {
  return parseConfig(webhookPusherConfigShape, env);
}
