import { createInterface } from "node:readline/promises";
import { RequestSettledSchema, ResponseChunkSchema, ToolCallRequestedSchema, ToolCallSettledSchema } from "../../../shared/contract/events/agent.js";
import type { EventEnvelope } from "../../../shared/contract/envelope.js";
import { AgentEventTypes, SystemEventTypes } from "../../../shared/contract/wire.js";
import { follow, type LiveEvent } from "../follow.js";
import { paint } from "../format.js";
import { call, streamUrl, type Target } from "../http.js";

/** The stream's last offset now (0 for a stream with no events yet): the conversation is followed from there. */
async function lastOffsetOf(target: Target, path: string): Promise<number> {
  const normal = path.startsWith("/") ? path : `/${path}`;
  const page = await call<{ streams: { path: string; lastOffset: number }[] }>(target, "GET", `/streams?prefix=${encodeURIComponent(normal)}&limit=1`);
  return page.streams.find((stream) => stream.path === normal)?.lastOffset ?? 0;
}

/**
 * `chat <path>`: type a message, see the answer stream in token by token, and tool calls as they happen. A turn
 * ends when a model request settles with no tool call to wait for (or the stream pauses); then the next line is
 * read. With stdin not a terminal, each line is one message, and the command exits after the last answer.
 */
export async function chatCommand(target: Target, path: string, signal: AbortSignal): Promise<void> {
  const out = process.stdout;
  const after = await lastOffsetOf(target, path);
  const controller = new AbortController();
  signal.addEventListener("abort", () => { controller.abort(); }, { once: true });
  /** The text of each running request printed so far: the stored answer's rest is printed when it settles. */
  const printed = new Map<number, string>();
  let turnDone: (() => void) | null = null;
  const endTurn = (): void => {
    turnDone?.();
    turnDone = null;
  };

  const onEvent = (event: LiveEvent): void => {
    switch (event.type) {
      case AgentEventTypes.responseChunk: {
        const chunk = ResponseChunkSchema.safeParse(event.payload);
        if (!chunk.success || !printed.has(chunk.data.requestOffset)) return;
        printed.set(chunk.data.requestOffset, (printed.get(chunk.data.requestOffset) ?? "") + chunk.data.text);
        out.write(chunk.data.text);
        return;
      }
      case AgentEventTypes.requestStarted:
        if ("offset" in event) printed.set(event.offset, "");
        out.write(paint("cyan", "assistant> "));
        return;
      case AgentEventTypes.requestSettled: {
        const settled = RequestSettledSchema.safeParse(event.payload);
        if (!settled.success) return;
        const { requestOffset, result } = settled.data;
        const shown = printed.get(requestOffset) ?? "";
        printed.delete(requestOffset);
        if (result.status === "succeeded") {
          // Chunks are live and may be missed (or arrive after the stored answer): the stored text is the truth.
          out.write(result.text.startsWith(shown) ? result.text.slice(shown.length) : `\n${result.text}`);
          out.write("\n");
          if (result.toolCalls.length === 0) endTurn();
        } else {
          out.write(`\n${paint("red", result.status === "failed" ? `failed: ${result.error}` : `cancelled: ${result.reason}`)}\n`);
          endTurn();
        }
        return;
      }
      case AgentEventTypes.toolCallRequested: {
        const call_ = ToolCallRequestedSchema.safeParse(event.payload);
        if (call_.success) out.write(paint("magenta", `  tool ${call_.data.name}(${call_.data.arguments})\n`));
        return;
      }
      case AgentEventTypes.toolCallSettled: {
        const settled = ToolCallSettledSchema.safeParse(event.payload);
        if (settled.success) out.write(paint("magenta", `  → ${"error" in settled.data ? `error: ${settled.data.error}` : JSON.stringify(settled.data.result)}\n`));
        return;
      }
      case SystemEventTypes.paused:
      case SystemEventTypes.agentPaused:
        out.write(paint("red", `[paused: ${JSON.stringify(event.payload)}]\n`));
        endTurn();
        return;
      default:
        return;
    }
  };

  const following = follow({
    target,
    selector: path,
    start: { after },
    onEvent,
    signal: controller.signal,
    onReconnect: (attempt, why) => {
      process.stderr.write(`${paint("yellow", `connection lost (${why}); resuming, attempt ${attempt}`, process.stderr)}\n`);
    },
  });
  // A refusal ends the chat at once, with the gateway's error.
  const failed = following.then(
    () => null,
    (err: unknown) => err,
  );

  const lines = createInterface({ input: process.stdin, output: process.stdin.isTTY ? out : undefined, terminal: process.stdin.isTTY });
  if (process.stdin.isTTY) {
    lines.setPrompt(paint("green", "you> "));
    lines.prompt();
  }
  try {
    for await (const line of lines) {
      const content = line.trim();
      if (content === "") {
        if (process.stdin.isTTY) lines.prompt();
        continue;
      }
      const turn = new Promise<void>((resolve) => {
        turnDone = resolve;
      });
      await call<EventEnvelope>(target, "POST", streamUrl(path), { type: AgentEventTypes.inputAdded, payload: { role: "user", content } });
      const error = await Promise.race([turn.then(() => null), failed]);
      if (error !== null) throw error instanceof Error ? error : new Error("the live connection failed");
      if (process.stdin.isTTY) lines.prompt();
    }
  } finally {
    lines.close();
    controller.abort();
    await following.catch(() => undefined);
  }
}
