import { z } from "zod";
import { Defaults } from "../contract/wire.js";

/**
 * Configuration shared by every service, read once from the environment at
 * start and frozen. A bad value stops the service with a message naming the
 * variable. Each service extends `baseConfigShape` with its own variables.
 */

const port = z.coerce.number().int().min(0).max(65_535);
const positiveInt = z.coerce.number().int().positive();

export const LogLevelSchema = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

export const baseConfigShape = {
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  /** The service's NATS user (deploy/nats/permissions.conf), when the server requires one. */
  NATS_USER: z.string().min(1).optional(),
  NATS_PASSWORD: z.string().min(1).optional(),
  LOG_LEVEL: LogLevelSchema.default("info"),
  EVENTS_STREAM: z.string().regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only").default(Defaults.eventsStream),
  EVENTS_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  EVENTS_DUPLICATE_WINDOW_MS: positiveInt.default(Defaults.duplicateWindowMs),
  /** How long a JetStream request (a publish's ack) may take before the caller gets 503 and retries. */
  NATS_REQUEST_TIMEOUT_MS: positiveInt.default(2_000),
} as const;

/** A variable holding JSON that must match `schema`. */
function json<T extends z.ZodType>(schema: T) {
  return z
    .string()
    .transform((text, context) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        context.addIssue({ code: "custom", message: "not valid JSON" });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

export const configFields = { port, positiveInt, json };

/** What every service's configuration contains. */
export type BaseConfig = Readonly<z.output<z.ZodObject<typeof baseConfigShape>>>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";

  /** `problems`: one line per bad variable, `NAME: what is wrong`. */
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((line) => `  ${line}`).join("\n")}`);
  }
}

/** Parse `env` against a schema; throws ConfigError listing every bad variable. */
export function parseConfig<T extends z.ZodRawShape>(shape: T, env: NodeJS.ProcessEnv): Readonly<z.output<z.ZodObject<T>>> {
  const result = z.object(shape).safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    throw new ConfigError(problems);
  }
  return Object.freeze(result.data);
}
