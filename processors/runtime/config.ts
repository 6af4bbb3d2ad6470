import { z } from "zod";
import { baseConfigShape, configFields, parseConfig } from "../../shared/service/config.js";

/** The variables every processor reads, beside its own (`processors/<name>/config.ts`). */
export const processorConfigShape = {
  ...baseConfigShape,
  HEALTH_HOST: z.string().min(1).default("127.0.0.1"),
  /** 0 picks a free port (logged); deployments set a fixed one for probes. */
  HEALTH_PORT: configFields.port.default(0),
  PROCESSOR_MAX_DELIVER: configFields.positiveInt.default(10),
  PROCESSOR_ACK_WAIT_MS: configFields.positiveInt.default(30_000),
  PROCESSOR_CONCURRENCY: configFields.positiveInt.default(64),
  /** Run an independent instance under another name (its own durable consumer), e.g. one per shard. */
  PROCESSOR_NAME: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
  /** Only streams under this subject filter (e.g. `events.tenant-a.>`); default every stream. */
  PROCESSOR_SUBJECT_FILTER: z.string().regex(/^events(\.[^.\s]+)*(\.>)?$/, "an events.* subject filter").optional(),
} as const;

export type ProcessorConfig = Readonly<z.output<z.ZodObject<typeof processorConfigShape>>>;

export function loadProcessorConfig(env: NodeJS.ProcessEnv): ProcessorConfig {
  return parseConfig(processorConfigShape, env);
}
