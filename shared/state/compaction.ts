import type { ChatMessage, MessageHistory } from "./message-history.js";

/**
 * The latest agent/context-compacted, as the conversation applies it: the model is sent `summary` in place of the
 * first `messageCount` messages (those the conversation held right after `throughOffset`), then the messages after
 * them. The log keeps every message; only what a request is sent changes (docs/ARCHITECTURE.md, "Context compaction").
 */
export interface Compaction {
  /** The agent/context-compacted event. */
  offset: number;
  throughOffset: number;
  messageCount: number;
  /** "" when the messages were dropped (method truncation): nothing is sent in their place. */
  summary: string;
  method: "summary" | "truncation";
}

/**
 * How a summary is sent: one system message after the system prompt, before the messages after the compaction. A
 * system message, not a user one: the model must not answer it, and it may be followed by either role.
 */
export function summaryMessage(summary: string): ChatMessage {
  return { role: "system", content: `Summary of the conversation before this point (the earlier messages were compacted):\n\n${summary}` };
}

/** The messages a request is sent: the summary (if any), then messages `from` to `to`. */
export function sentMessages(messages: MessageHistory, from: number, to: number, summary: string): ChatMessage[] {
  const kept = messages.slice(from, to);
  return summary === "" ? kept : [summaryMessage(summary), ...kept];
}
