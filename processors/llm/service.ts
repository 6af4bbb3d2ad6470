import type { ProcessorDeps } from "../runtime/run-processor.js";
import type { Processor } from "../runtime/runtime.js";
import { loadLlmConfig } from "./config.js";
import type { ConversationState } from "../../shared/state/conversation.js";
import { EchoModelClient, OpenAiModelClient, type ModelClient } from "./model-client.js";
import { llmProcessor } from "./processor.js";
import { createCompactor } from "./compaction.js";

/** Wires the LLM processor to the configured model endpoint, or to the echo provider when there is none. */
export function buildLlm(deps: ProcessorDeps, env: NodeJS.ProcessEnv, options: { name?: string; filterSubject?: string } = {}): Processor<ConversationState> {
  const config = loadLlmConfig(env);
  const client: ModelClient =
    config.LLM_BASE_URL === undefined
      ? new EchoModelClient(deps.logger)
      : new OpenAiModelClient({ baseURL: config.LLM_BASE_URL, apiKey: config.LLM_API_KEY, maxRetries: config.LLM_MAX_RETRIES, timeoutMs: config.LLM_TIMEOUT_MS });
  deps.logger.info({ provider: client.name, model: config.LLM_MODEL }, "model provider");
  const compactor = createCompactor(client, {
    defaultWindow: config.LLM_CONTEXT_WINDOW,
    windows: config.LLM_CONTEXT_WINDOWS,
    compactAt: config.LLM_COMPACT_AT,
    timeoutMs: config.LLM_COMPACT_TIMEOUT_MS,
    prices: config.LLM_PRICES,
  });
  const processor = llmProcessor({ nats: deps.nats, client, defaultModel: config.LLM_MODEL, compactor, prices: config.LLM_PRICES });
  return { ...processor, ...(options.name === undefined ? {} : { name: options.name }), ...(options.filterSubject === undefined ? {} : { filterSubject: options.filterSubject }) };
}
