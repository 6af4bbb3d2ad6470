import type { Usage } from "../contract/events/agent.js";

/**
 * What an agent's model requests used, summed from the log: the `usage` of every agent/llm-request-settled and
 * agent/context-compacted (the summary request's). `costUsd` sums the costs the LLM processor priced when it settled
 * each request (LLM_PRICES); a request of a model without a price adds nothing to it.
 */
export interface UsageTotals {
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

/** The latest agent/budget-configured: a limit left out is no limit. */
export interface Budget {
  maxTokens?: number;
  maxCostUsd?: number;
}

export const noUsage: UsageTotals = Object.freeze({ promptTokens: 0, completionTokens: 0, costUsd: 0 });

export function addUsage(totals: UsageTotals, usage: Usage | null): UsageTotals {
  if (usage === null) return totals;
  return {
    promptTokens: totals.promptTokens + usage.promptTokens,
    completionTokens: totals.completionTokens + usage.completionTokens,
    costUsd: totals.costUsd + (usage.costUsd ?? 0),
  };
}

/** Which limit the totals have reached (`>=`), said for a person; null while within the budget, or with none. */
export function budgetReached(totals: UsageTotals, budget: Budget | null): string | null {
  if (budget === null) return null;
  const tokens = totals.promptTokens + totals.completionTokens;
  if (budget.maxTokens !== undefined && tokens >= budget.maxTokens) return `${tokens} tokens used, budget ${budget.maxTokens}`;
  if (budget.maxCostUsd !== undefined && totals.costUsd >= budget.maxCostUsd) return `$${totals.costUsd.toFixed(6)} spent, budget $${budget.maxCostUsd}`;
  return null;
}
