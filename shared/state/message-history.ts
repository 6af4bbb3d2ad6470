import type { ToolCall } from "../contract/events/agent.js";

/** One message of the conversation as the model is sent it. */
export type ChatMessage =
  | { role: "user" | "system" | "developer"; content: string }
  | { role: "assistant"; content: string; toolCalls: ToolCall[] }
  | { role: "tool"; toolCallId: string; content: string };

/**
 * The conversation's messages as an append-only list that successive states share. Appending to the newest state's
 * list costs O(1) (it grows one array in place); every older state keeps seeing only its own prefix, and one that is
 * appended to again copies first. Copying the whole array on every message instead made rebuilding a conversation
 * quadratic: 40,000 messages took ~15 s.
 */
export class MessageHistory {
  private constructor(
    private readonly backing: ChatMessage[],
    readonly length: number,
  ) {}

  static empty(): MessageHistory {
    return new MessageHistory([], 0);
  }

  append(message: ChatMessage): MessageHistory {
    return this.appendAll([message]);
  }

  appendAll(messages: readonly ChatMessage[]): MessageHistory {
    if (messages.length === 0) return this;
    // Only the list whose length is the array's may grow it: a longer list shares it.
    const backing = this.backing.length === this.length ? this.backing : this.backing.slice(0, this.length);
    // One push per message: spreading a long list as arguments overflows the call stack.
    for (const message of messages) backing.push(message);
    return new MessageHistory(backing, backing.length);
  }

  /** The first `count` messages (all by default), as a new array. */
  toArray(count = this.length): ChatMessage[] {
    return this.backing.slice(0, Math.min(count, this.length));
  }
}
