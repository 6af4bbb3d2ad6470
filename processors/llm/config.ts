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
} as const;

export function loadLlmConfig(env: NodeJS.ProcessEnv) {
  return parseConfig(llmConfigShape, env);
}
