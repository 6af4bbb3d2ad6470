import type { ContextCompactedSchema, Usage } from "../../shared/contract/events/agent.js";
import { AgentEventTypes } from "../../shared/contract/wire.js";
import type { EventInput } from "../../shared/contract/envelope.js";
import type { Logger } from "../../shared/service/logger.js";
import { sentMessages } from "../../shared/state/compaction.js";
import { nextRequest, type ConversationState, type ModelRequest } from "../../shared/state/conversation.js";
import type { ChatMessage, MessageHistory } from "../../shared/state/message-history.js";
import type { ModelClient } from "./model-client.js";
import { priced, type Prices } from "./pricing.js";
import { estimateRequest, messageTokens, requestTokens, textTokens } from "./token-count.js";
import type { z } from "zod";

/**
 * Context compaction (docs/ARCHITECTURE.md, "Context compaction"): before a request would fill more than `compactAt`
 * of the model's window, the oldest messages are replaced by a summary the model writes of them (or, when it cannot,
 * dropped), recorded as agent/context-compacted and decided in the same serialised decision that starts the request.
 */

export interface CompactionSettings {
  /** A model's window when neither the agent nor `windows` names one. */
  defaultWindow: number;
  windows: Readonly<Record<string, number>>;
  compactAt: number;
  /** The summary request's time limit; past it the messages are dropped instead. */
  timeoutMs: number;
  prices: Prices;
}

export type ContextCompacted = z.input<typeof ContextCompactedSchema>;

export interface Compactor {
  /** The agent/context-compacted a request of `model` needs before it starts, or null when it fits. */
  compactIfNeeded(state: ConversationState, path: string, model: string, log: Logger): Promise<ContextCompacted | null>;
}

/** Where the oldest messages are cut off: `cut` messages go, the event at `throughOffset` added the last of them. */
export interface CompactionPlan {
  cut: number;
  throughOffset: number;
}

/**
 * Whether the history may be cut before message `cut`: between two events (the conversation held exactly the first
 * `cut` messages right after one), and never between an assistant's tool calls and their results, which follow it.
 * A cut `atTurn` also keeps the kept part starting with an input, as some models' chat templates require.
 */
function cleanCut(messages: MessageHistory, cut: number, atTurn: boolean): boolean {
  const before = messages.at(cut - 1);
  const after = messages.at(cut);
  if (before === undefined || after === undefined) return false;
  if ((messages.offsetAt(cut - 1) ?? 0) >= (messages.offsetAt(cut) ?? 0)) return false;
  if (atTurn) return after.role !== "tool" && after.role !== "assistant";
  return after.role !== "tool" && !(before.role === "assistant" && before.toolCalls.length > 0);
}

/**
 * The cut that keeps the most recent messages within `keepTokens`, cutting more than the `from` already compacted:
 * before an input if one fits, else anywhere clean; when even the newest clean piece is larger, the cut that keeps
 * the least; null when no clean cut exists (one turn of tool calls fills the window). The newest message is always
 * kept: the model answers it.
 */
export function planCompaction(messages: MessageHistory, from: number, keepTokens: number): CompactionPlan | null {
  let atTurn: number | null = null;
  let fitting: number | null = null;
  let latest: number | null = null;
  let kept = 0;
  for (let cut = messages.length - 1; cut > from; cut--) {
    const message = messages.at(cut);
    if (message !== undefined) kept += messageTokens(message);
    if (kept > keepTokens && latest !== null) break;
    if (!cleanCut(messages, cut, false)) continue;
    latest ??= cut;
    if (kept > keepTokens) continue;
    fitting = cut;
    if (cleanCut(messages, cut, true)) atTurn = cut;
  }
  const cut = atTurn ?? fitting ?? latest;
  if (cut === null) return null;
  return { cut, throughOffset: messages.offsetAt(cut - 1) ?? 0 };
}

const SUMMARY_PROMPT = (words: number) =>
  "You compact the history of a conversation between a user and an AI assistant, so that the assistant can go on with it " +
  "without the messages themselves. Write notes for the assistant: the user's goals and instructions, facts and decisions " +
  "established, tool results that still matter, and what was being worked on last. Keep names, numbers and identifiers " +
  `exactly. Do not address the user and do not continue the conversation. At most ${words} words.`;

function transcriptLine(message: ChatMessage): string {
  switch (message.role) {
    case "assistant": {
      const calls = message.toolCalls.map((call) => `\n[assistant called ${call.name} (${call.callId}) with ${call.arguments}]`).join("");
      return `[assistant] ${message.content}${calls}`;
    }
    case "tool":
      return `[tool result ${message.toolCallId}] ${message.content}`;
    default:
      return `[${message.role}] ${message.content}`;
  }
}

/** The part to summarise as one text, the oldest lines left out past `maxTokens` (the summary request must fit too). */
function transcript(previousSummary: string, messages: readonly ChatMessage[], maxTokens: number): string {
  const head = previousSummary === "" ? "" : `[summary of what came before] ${previousSummary}\n\n`;
  let budget = maxTokens - textTokens(head);
  const lines: string[] = [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const line = transcriptLine(messages[i] as ChatMessage);
    budget -= textTokens(line) + 1;
    if (budget < 0) {
      lines.push(`[${i + 1} earlier messages left out]`);
      break;
    }
    lines.push(line);
  }
  return `${head}${lines.reverse().join("\n")}`;
}

interface SummaryOutcome {
  summary: string;
  method: "summary" | "truncation";
  usage: Usage | null;
}

/** Summaries made lately, by stream, previous compaction and cut: a decision made again (the stream moved) reuses its own. */
const SUMMARY_MEMORY = 128;
const SUMMARY_MEMORY_MS = 10 * 60_000;

export function createCompactor(client: ModelClient, settings: CompactionSettings): Compactor {
  const made = new Map<string, { at: number; outcome: Promise<SummaryOutcome> }>();

  async function summarise(model: string, previousSummary: string, messages: readonly ChatMessage[], window: number, summaryTokens: number, log: Logger): Promise<SummaryOutcome> {
    const request: ModelRequest = {
      model,
      systemPrompt: SUMMARY_PROMPT(Math.floor(summaryTokens * 0.75)),
      messages: [{ role: "user", content: transcript(previousSummary, messages, Math.max(256, window - summaryTokens * 2 - 512)) }],
      tools: [],
    };
    try {
      const answer = await client.complete(request, { signal: AbortSignal.timeout(settings.timeoutMs), onText: () => undefined });
      const summary = answer.text.trim();
      if (summary === "") throw new Error("the model answered with an empty summary");
      return { summary, method: "summary", usage: priced(answer.usage, model, settings.prices) };
    } catch (err) {
      // The messages must go all the same, or the request would not fit: dropped, oldest first.
      log.warn({ err }, "the summary request failed; dropping the oldest messages instead");
      // What an earlier compaction summarised is kept: only the messages since are dropped.
      return { summary: previousSummary, method: "truncation", usage: null };
    }
  }

  function remembered(key: string, make: () => Promise<SummaryOutcome>): Promise<SummaryOutcome> {
    const now = Date.now();
    for (const [k, entry] of made) if (now - entry.at > SUMMARY_MEMORY_MS || made.size > SUMMARY_MEMORY) made.delete(k);
    const known = made.get(key);
    if (known !== undefined) return known.outcome;
    const outcome = make();
    made.set(key, { at: now, outcome });
    // A failed summary is not kept: a later decision at the same cut (after a pause) asks the model again.
    void outcome.then((o) => {
      if (o.method === "truncation") made.delete(key);
    });
    return outcome;
  }

  return {
    async compactIfNeeded(state, path, model, log) {
      const window = state.config.contextWindow ?? settings.windows[model] ?? settings.defaultWindow;
      const threshold = Math.floor(window * (state.config.compactAt ?? settings.compactAt));
      const request = nextRequest(state, model);
      const tokensBefore = requestTokens(state, request);
      if (tokensBefore <= threshold) return null;
      const from = state.compaction?.messageCount ?? 0;
      // What every request carries besides the messages (the system prompt, the tools' schemas) comes out of what is kept.
      const fixed = estimateRequest({ ...request, messages: [] });
      const plan = planCompaction(state.messages, from, Math.max(0, Math.floor(threshold / 2) - fixed));
      if (plan === null) {
        log.warn({ tokens: tokensBefore, threshold, window }, "the request is over the compaction threshold, but no clean cut is left: sent as it is");
        return null;
      }
      const summaryTokens = Math.max(64, Math.min(2_000, Math.floor(threshold / 4)));
      const previous = state.compaction?.summary ?? "";
      const key = `${path}\n${state.compaction?.offset ?? 0}\n${plan.throughOffset}`;
      const outcome = await remembered(key, () => summarise(model, previous, state.messages.slice(from, plan.cut), window, summaryTokens, log));
      const after: ModelRequest = { ...request, messages: sentMessages(state.messages, plan.cut, state.messages.length, outcome.summary) };
      const compacted: ContextCompacted = { summary: outcome.summary, throughOffset: plan.throughOffset, method: outcome.method, tokensBefore, tokensAfter: estimateRequest(after), usage: outcome.usage };
      log.info({ method: compacted.method, throughOffset: compacted.throughOffset, messages: plan.cut - from, tokensBefore, tokensAfter: compacted.tokensAfter, threshold }, "compacting the context");
      return compacted;
    },
  };
}

export function compactedEvent(payload: ContextCompacted): EventInput {
  return { type: AgentEventTypes.contextCompacted, payload };
}
