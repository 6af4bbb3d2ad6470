import { publishEphemeral } from "../../shared/log/append.js";
import { estimateRequest, textTokens } from "./token-count.js";
import type { Logger } from "../../shared/service/logger.js";
import { llmSeconds, llmTokens } from "../../shared/service/metrics.js";
import type { Nats } from "../../shared/nats/connection.js";
import { followStream } from "../../shared/log/follow.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { AgentEventTypes, SystemEventTypes } from "../../shared/contract/wire.js";
import { serviceWriter } from "../../shared/log/writer.js";
import { runningRequest, type ConversationState } from "../../shared/state/conversation.js";
import { InputAddedSchema, type RequestResult } from "../../shared/contract/events/agent.js";
import type { ModelClient } from "./model-client.js";
import { priced, type Prices } from "./pricing.js";

/** Response chunks are published by the LLM processor itself. */
const chunkWriter = serviceWriter("llm");

/** Token streaming is coalesced to at most one ephemeral chunk per this period, so it never floods SSE or the breaker. */
const CHUNK_PERIOD_MS = 50;

export interface ExecutionContext {
  nats: Nats;
  client: ModelClient;
  defaultModel: string;
  prices: Prices;
  path: StreamPath;
  requestOffset: number;
  /** The conversation with the request running (`state.running.offset === requestOffset`). */
  state: ConversationState;
  log: Logger;
}

/**
 * Watches the stream from just after the request for what must stop it: an interrupting input, or the stream
 * being paused. Calls `stop` with the reason. No consumer per request (shared/log/follow.ts): a consumer created
 * and deleted for every model request was most of the JetStream API calls under agent traffic (issue #20).
 */
function watchForInterrupts(nats: Nats, path: StreamPath, fromOffset: number, stop: (reason: string) => void, log: Logger): Promise<() => void> {
  return followStream(
    nats,
    path,
    fromOffset - 1,
    (event) => {
      if (event.type === AgentEventTypes.inputAdded && InputAddedSchema.safeParse(event.payload).data?.trigger === "interrupt") stop(`interrupted by input at offset ${event.offset}`);
      if (event.type === SystemEventTypes.paused || event.type === SystemEventTypes.agentPaused) stop(`stream paused at offset ${event.offset}`);
    },
    log,
  );
}

/**
 * Runs one model request: the conversation as it stood when the request
 * started, streamed back as coalesced ephemeral chunks, cancelled by an
 * interrupting input. Always resolves to a result; never throws for the model's sake.
 */
export async function executeRequest(context: ExecutionContext): Promise<RequestResult> {
  const { nats, client, path, requestOffset, state, log } = context;
  // The state has this request running (the caller's contract); the fallback only keeps a broken caller answering.
  const request = runningRequest(state) ?? { model: context.defaultModel, systemPrompt: state.config.systemPrompt, messages: state.messages.toArray(), tools: state.config.tools ?? [] };
  const controller = new AbortController();
  // Set from the watcher's callback; read through a function so the compiler does not assume it stays null.
  const cancel = { reason: null as string | null };
  const cancelReason = (): string | null => cancel.reason;
  const stopWatching = await watchForInterrupts(
    nats,
    path,
    requestOffset + 1,
    (reason) => {
      cancel.reason ??= reason;
      controller.abort(new Error(reason));
    },
    log,
  );

  let partialText = "";
  let buffered = "";
  let sequence = 0;
  const flush = (): void => {
    if (buffered === "") return;
    const text = buffered;
    buffered = "";
    try {
      publishEphemeral(nats, chunkWriter, path, { type: AgentEventTypes.responseChunk, payload: { requestOffset, sequence: sequence++, text } });
    } catch (err) {
      log.debug({ err }, "could not publish a response chunk");
    }
  };
  const ticker = setInterval(flush, CHUNK_PERIOD_MS);
  const endTimer = llmSeconds.startTimer();

  try {
    const answer = await client.complete(
      request,
      {
        signal: controller.signal,
        onText: (delta) => {
          partialText += delta;
          buffered += delta;
        },
      },
    );
    flush();
    // An aborted stream can end quietly instead of throwing: the abort, not the ending, decides.
    const reason = cancelReason();
    if (reason !== null) {
      endTimer({ status: "cancelled" });
      return { status: "cancelled", reason, partialText };
    }
    endTimer({ status: "succeeded" });
    if (answer.usage !== null) {
      llmTokens.inc({ kind: "prompt" }, answer.usage.promptTokens);
      llmTokens.inc({ kind: "completion" }, answer.usage.completionTokens);
    }
    // A model that reports no usage is counted all the same (budgets, compaction): the request and answer estimated.
    const usage = answer.usage ?? { promptTokens: estimateRequest(request), completionTokens: textTokens(answer.text + answer.toolCalls.map((call) => call.name + call.arguments).join("")), estimated: true as const };
    return { status: "succeeded", text: answer.text, toolCalls: answer.toolCalls, usage: priced(usage, request.model, context.prices) };
  } catch (err) {
    flush();
    const reason = cancelReason();
    endTimer({ status: reason === null ? "failed" : "cancelled" });
    if (reason !== null) return { status: "cancelled", reason, partialText };
    const message = err instanceof Error ? err.message : String(err);
    log.warn({ err }, "model request failed");
    return { status: "failed", error: message };
  } finally {
    clearInterval(ticker);
    stopWatching();
  }
}
