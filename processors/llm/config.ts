import { z } from "zod";
import { configFields, parseConfig } from "../../shared/service/config.js";

export const llmConfigShape = {
  /** Any OpenAI-compatible endpoint, e.g. https://api.openai.com/v1; unset means the offline echo provider. */
  LLM_BASE_URL: z.url().optional(),
  LLM_API_KEY: z.string().default("not-needed"),
  LLM_MODEL: z.string().min(1).default("gpt-4o-mini"),
  /** The SDK's own retries of 429 and 5xx answers. */
  LLM_MAX_RETRIES: z.coerce.number().int().nonnegative().default(2),
  LLM_TIMEOUT_MS: configFields.positiveInt.default(600_000),
  /** The context window of a model not in LLM_CONTEXT_WINDOWS, in tokens; an agent's `contextWindow` overrides both. */
  LLM_CONTEXT_WINDOW: configFields.positiveInt.default(128_000),
  /** Context windows by model name, JSON: `{"gpt-4o-mini": 128000}`. */
  LLM_CONTEXT_WINDOWS: configFields.json(z.record(z.string().min(1), z.number().int().positive())).default({}),
  /** The share of the window a request may fill before the history is compacted; an agent's `compactAt` overrides it. */
  LLM_COMPACT_AT: z.coerce.number().gt(0).max(1).default(0.5),
  /** How long the summary request of a compaction may take before the oldest messages are dropped instead. */
  LLM_COMPACT_TIMEOUT_MS: configFields.positiveInt.default(120_000),
  /** Prices by model name, JSON: `{"gpt-4o-mini": {"inputPerMillion": 0.15, "outputPerMillion": 0.6}}` (USD per million tokens). */
  LLM_PRICES: configFields.json(z.record(z.string().min(1), z.object({ inputPerMillion: z.number().nonnegative(), outputPerMillion: z.number().nonnegative() }).strict())).default({}),
} as const;

export type LlmConfig = ReturnType<typeof loadLlmConfig>;

export function loadLlmConfig(env: NodeJS.ProcessEnv) {
  return parseConfig(llmConfigShape, env);
}
