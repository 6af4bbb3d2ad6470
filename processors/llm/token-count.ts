import { countTokens } from "gpt-tokenizer/encoding/o200k_base";
import type { ChatMessage } from "../../shared/state/message-history.js";
import type { ConversationState, ModelRequest } from "../../shared/state/conversation.js";

/**
 * How many tokens a model request takes, before it is sent: what the model last reported (its prompt and answer
 * cover the messages up to its answer) plus an estimate of every message since, or an estimate of the whole request
 * when the model reported nothing that still applies (none yet, or a compaction since). Estimates use o200k_base, the
 * encoding of OpenAI's current models; other models' tokenizers differ by some percent, which the compaction
 * threshold's margin (LLM_COMPACT_AT of the window) absorbs.
 */

/** The chat format's own tokens around each message (role, separators), as OpenAI counts them. */
const PER_MESSAGE_TOKENS = 4;
/** The tokens that prime the answer. */
const PER_REQUEST_TOKENS = 3;

/** Special-token text in a message ("<|endoftext|>") is counted as the text it is, never refused. */
const asPlainText = { disallowedSpecial: new Set<string>() };

/** Messages are values shared by every state that holds them: each is counted once. */
const counted = new WeakMap<ChatMessage, number>();

export function textTokens(text: string): number {
  return text === "" ? 0 : countTokens(text, asPlainText);
}

export function messageTokens(message: ChatMessage): number {
  const known = counted.get(message);
  if (known !== undefined) return known;
  let tokens = PER_MESSAGE_TOKENS + textTokens(message.content);
  if (message.role === "assistant") for (const call of message.toolCalls) tokens += textTokens(call.name) + textTokens(call.arguments) + PER_MESSAGE_TOKENS;
  if (message.role === "tool") tokens += textTokens(message.toolCallId);
  counted.set(message, tokens);
  return tokens;
}

export function messagesTokens(messages: readonly ChatMessage[]): number {
  let tokens = 0;
  for (const message of messages) tokens += messageTokens(message);
  return tokens;
}

/** The whole request, estimated: system prompt, messages (the summary among them) and the tools' definitions. */
export function estimateRequest(request: ModelRequest): number {
  const system = request.systemPrompt === undefined || request.systemPrompt === "" ? 0 : PER_MESSAGE_TOKENS + textTokens(request.systemPrompt);
  const tools = request.tools.length === 0 ? 0 : textTokens(JSON.stringify(request.tools));
  return PER_REQUEST_TOKENS + system + tools + messagesTokens(request.messages);
}

/**
 * The tokens of `request`, the request a start would send now (`nextRequest(state)`): from the model's last report
 * when it was sent under the same compaction, else estimated whole.
 */
export function requestTokens(state: ConversationState, request: ModelRequest): number {
  const last = state.lastUsage;
  const compactedCount = state.compaction?.messageCount ?? 0;
  if (last === null || last.compactedCount !== compactedCount || last.messageCount > state.messages.length) return estimateRequest(request);
  return last.tokens + messagesTokens(state.messages.slice(last.messageCount));
}
