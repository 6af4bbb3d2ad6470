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
 *
 * Beside each message it keeps the offset of the event that put it in the list (an input's own, or for an input that
 * waited behind a request, the event that let it join): offsets never decrease along the list, so the messages the
 * conversation held right after any event are a prefix, found by a binary search (`countThrough`). A compaction names
 * that event (agent/context-compacted `throughOffset`).
 */
export class MessageHistory {
  private constructor(
    private readonly backing: ChatMessage[],
    /** Grows with `backing`, index for index. */
    private readonly offsets: number[],
    readonly length: number,
  ) {}

  static empty(): MessageHistory {
    return new MessageHistory([], [], 0);
  }

  /** `offset`: the event that adds the message (at least the last one's). */
  append(message: ChatMessage, offset: number): MessageHistory {
    return this.appendAll([message], offset);
  }

  appendAll(messages: readonly ChatMessage[], offset: number): MessageHistory {
    if (messages.length === 0) return this;
    // Only the list whose length is the array's may grow it: a longer list shares it.
    const own = this.backing.length === this.length;
    const backing = own ? this.backing : this.backing.slice(0, this.length);
    const offsets = own ? this.offsets : this.offsets.slice(0, this.length);
    // One push per message: spreading a long list as arguments overflows the call stack.
    for (const message of messages) {
      backing.push(message);
      offsets.push(offset);
    }
    return new MessageHistory(backing, offsets, backing.length);
  }

  /** The first `count` messages (all by default), as a new array. */
  toArray(count = this.length): ChatMessage[] {
    return this.backing.slice(0, Math.min(count, this.length));
  }

  /** Messages `from` (inclusive) to `to` (exclusive, default all), as a new array. */
  slice(from: number, to = this.length): ChatMessage[] {
    return this.backing.slice(from, Math.min(to, this.length));
  }

  at(index: number): ChatMessage | undefined {
    return index >= 0 && index < this.length ? this.backing[index] : undefined;
  }

  /** The offset of the event that added the message at `index`. */
  offsetAt(index: number): number | undefined {
    return index >= 0 && index < this.length ? this.offsets[index] : undefined;
  }

  /** How many messages the list held right after the event at `offset`: those added by it or by an event before it. */
  countThrough(offset: number): number {
    let low = 0;
    let high = this.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.offsets[middle] ?? Infinity) <= offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
