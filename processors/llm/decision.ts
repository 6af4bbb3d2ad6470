import type { ConversationState } from "../../shared/state/conversation.js";
import { budgetReached } from "../../shared/state/usage.js";

/** What the loop should do now, given the state; the processor turns it into events. */
export type Decision =
  | { kind: "none" }
  | { kind: "start-request" }
  /** `reason` is what agent/paused says: "budget" for a budget reached, `detail` then says which limit. */
  | { kind: "pause"; reason: string; detail?: string }
  | { kind: "cancel-tool-calls"; callIds: string[] };

/** agent/paused's reason when a budget is reached (docs/EVENTS.md, "Budgets"). */
export const BUDGET_PAUSE_REASON = "budget";

export function decide(state: ConversationState): Decision {
  if (state.running !== null) return { kind: "none" };
  const pending = Object.keys(state.pendingToolCalls);
  if (pending.length > 0) {
    // An interrupt does not wait for tools: their calls are settled as cancelled so the history stays valid.
    return state.interruptAt !== null ? { kind: "cancel-tool-calls", callIds: pending } : { kind: "none" };
  }
  if (!state.wantsRequest) return { kind: "none" };
  // Before the request, never after starting it: a request that runs is never cut short by its own usage.
  const reached = budgetReached(state.usage, state.budget);
  if (reached !== null) return { kind: "pause", reason: BUDGET_PAUSE_REASON, detail: reached };
  if (state.autonomousTurns >= state.config.maxAutonomousTurns) {
    return { kind: "pause", reason: `${state.autonomousTurns} model requests ran without new outside input (maxAutonomousTurns ${state.config.maxAutonomousTurns})` };
  }
  return { kind: "start-request" };
}
