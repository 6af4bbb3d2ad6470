import type { ConversationState } from "../../shared/state/conversation.js";

/** What the loop should do now, given the state; the processor turns it into events. */
export type Decision =
  | { kind: "none" }
  | { kind: "start-request" }
  | { kind: "pause"; reason: string }
  | { kind: "cancel-tool-calls"; callIds: string[] };

export function decide(state: ConversationState): Decision {
  if (state.running !== null) return { kind: "none" };
  const pending = Object.keys(state.pendingToolCalls);
  if (pending.length > 0) {
    // An interrupt does not wait for tools: their calls are settled as cancelled so the history stays valid.
    return state.interruptAt !== null ? { kind: "cancel-tool-calls", callIds: pending } : { kind: "none" };
  }
  if (!state.wantsRequest) return { kind: "none" };
  if (state.autonomousTurns >= state.config.maxAutonomousTurns) {
    return { kind: "pause", reason: `${state.autonomousTurns} model requests ran without new outside input (maxAutonomousTurns ${state.config.maxAutonomousTurns})` };
  }
  return { kind: "start-request" };
}
