import type { Usage } from "../../shared/contract/events/agent.js";

/** USD per million tokens, by model name (LLM_PRICES). */
export type Prices = Readonly<Record<string, { inputPerMillion: number; outputPerMillion: number }>>;

/**
 * The usage with what it cost, priced when the request settles, so that the log holds the cost and the state that
 * sums it is a function of the log alone (a price changed later does not rewrite the past). A model without a
 * price gets no `costUsd`.
 */
export function priced(usage: Usage | null, model: string, prices: Prices): Usage | null {
  const price = prices[model];
  if (usage === null || price === undefined) return usage;
  return { ...usage, costUsd: (usage.promptTokens * price.inputPerMillion + usage.completionTokens * price.outputPerMillion) / 1_000_000 };
}
