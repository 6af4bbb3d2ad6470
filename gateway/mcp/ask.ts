import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { AgentEventTypes } from "../../shared/contract/wire.js";
import { appendEvents, type AppendHold } from "../../shared/log/append.js";
import { followStream } from "../../shared/log/follow.js";
import type { SecretBox } from "../../shared/log/secrets.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import type { Writer } from "../../shared/log/writer.js";
import { natsFailure, type Nats } from "../../shared/nats/connection.js";
import type { Logger } from "../../shared/service/logger.js";
import { askProgress, foldAsk, type AskOutcome } from "./ask-outcome.js";
import { errorResult, jsonResult } from "./tool-result.js";

/** How long `ask` waits for the agent's answer unless the call asks for another wait (`timeoutSeconds`). */
export const DEFAULT_ASK_TIMEOUT_MS = 120_000;
/** The longest wait a call may ask for: an HTTP response held open that long is already unusual. */
export const MAX_ASK_TIMEOUT_SECONDS = 600;

export interface AskDeps {
  nats: Nats;
  indexes: StreamIndexes;
  secrets: SecretBox | null;
  hold: AppendHold;
  logger: Logger;
}

export interface AskCall {
  path: StreamPath;
  writer: Writer;
  message: string;
  timeoutMs: number;
  /** Aborted when the client goes away (the SDK aborts a request's handler when its connection closes). */
  signal: AbortSignal;
  /** Told of each event the wait goes through (MCP progress notifications, which keep a client's timeout from firing). */
  onEvent: (event: EventEnvelope) => void;
}

type Ended = AskOutcome | { kind: "timeout" } | { kind: "aborted" } | { kind: "unfollowable"; error: Error };

/**
 * `ask`: append the message as `agent/input-added` (the append decides the rights: `append` on the stream; a paused
 * stream refuses it with STREAM_PAUSED), then follow the stream from the input's offset until ask-outcome.ts decides
 * what became of it. The follower (shared/log/follow.ts) is woken by the stream's own subject and reads by direct
 * get: no polling, no consumer to create or delete, whichever gateway replica runs the model's processor.
 */
export async function ask(deps: AskDeps, call: AskCall): Promise<CallToolResult> {
  const input = { type: AgentEventTypes.inputAdded, payload: { role: "user", content: call.message } };
  const appended = await appendEvents(deps.nats, call.path, [input], { writer: call.writer, indexes: deps.indexes, secrets: deps.secrets, ...deps.hold });
  const inputOffset = appended.events[0]?.offset ?? 0;
  const seconds = Math.round(call.timeoutMs / 1000);

  const ended = await new Promise<Ended>((resolve) => {
    let progress = askProgress(inputOffset);
    let settled = false;
    let stop: (() => void) | undefined;
    const finish = (value: Ended): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      call.signal.removeEventListener("abort", onAbort);
      stop?.();
      resolve(value);
    };
    const onAbort = (): void => {
      finish({ kind: "aborted" });
    };
    const timer = setTimeout(() => {
      finish({ kind: "timeout" });
    }, call.timeoutMs);
    call.signal.addEventListener("abort", onAbort);
    if (call.signal.aborted) onAbort();
    followStream(
      deps.nats,
      call.path,
      inputOffset,
      (event) => {
        if (settled) return;
        call.onEvent(event);
        const next = foldAsk(progress, event);
        progress = next.progress;
        if (next.outcome !== null) finish(next.outcome);
      },
      deps.logger,
    ).then(
      (unsubscribe) => {
        // The first catch-up may already have decided (a fast model): stop at once.
        if (settled) unsubscribe();
        else stop = unsubscribe;
      },
      (err: unknown) => {
        finish({ kind: "unfollowable", error: natsFailure(err) });
      },
    );
  });

  switch (ended.kind) {
    case "answered":
      return jsonResult({ text: ended.text, inputOffset, requestOffset: ended.requestOffset, settledOffset: ended.settledOffset });
    case "failed":
      return errorResult(`${ended.reason} (input at offset ${inputOffset}, see offset ${ended.offset})`);
    case "paused":
      return errorResult(`STREAM_PAUSED: ${ended.reason} (input at offset ${inputOffset}, pause at offset ${ended.offset})`);
    case "timeout":
      return errorResult(`The agent did not answer within ${seconds} s. The input is stored at offset ${inputOffset} and the agent may still answer: read-events with after ${inputOffset} shows what it did.`);
    case "aborted":
      return errorResult(`The request was cancelled before the agent answered (input at offset ${inputOffset}).`);
    case "unfollowable":
      // NATS trouble as the wait began: the tool's error handling answers it (NATS_UNAVAILABLE, or INTERNAL, logged).
      throw ended.error;
  }
}
