import { McpError, ErrorCode, type CallToolResult, type CompatibilityCallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { EventInput } from "../../shared/contract/envelope.js";
import { InputAddedSchema, ToolCallSettledSchema } from "../../shared/contract/events/agent.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { AgentEventTypes, SystemEventTypes } from "../../shared/contract/wire.js";
import { publishEphemeral } from "../../shared/log/append.js";
import { followStream } from "../../shared/log/follow.js";
import { serviceWriter } from "../../shared/log/writer.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { Logger } from "../../shared/service/logger.js";
import type { McpConnection } from "./connection.js";
import type { OpenCall } from "./state.js";

const progressWriter = serviceWriter("mcp");

export interface McpCall extends OpenCall {
  callId: string;
  /** The tool's name on its server. */
  mcpName: string;
  server: string;
}

export interface CallContext {
  nats: Nats;
  path: StreamPath;
  connection: McpConnection;
  timeoutMs: number;
  maxResultBytes: number;
  log: Logger;
}

/** Why a call stops before its answer: an interrupt (the loop settles the call), a pause, or a settlement by someone else. */
type StopReason = { kind: "interrupted" | "paused" | "settled"; detail: string };

function settled(callId: string, outcome: { result: unknown } | { error: string }): EventInput[] {
  return [{ type: AgentEventTypes.toolCallSettled, payload: { callId, ...outcome } }];
}

function textOf(result: CallToolResult): string {
  return result.content
    .map((part) => (part.type === "text" ? part.text : `[${part.type}]`))
    .join("\n")
    .trim();
}

/** What the log keeps of a tool's answer: the content as the spec gives it, and structured content when there is some. */
function outcomeOf(result: CallToolResult | CompatibilityCallToolResult, maxBytes: number): { result: unknown } | { error: string } {
  const outcome = ((): { result: unknown } | { error: string } => {
    if (!("content" in result)) return { result: result.toolResult };
    const answer = result as CallToolResult;
    if (answer.isError === true) return { error: textOf(answer) === "" ? "the tool reported an error" : textOf(answer) };
    return { result: { content: answer.content, ...(answer.structuredContent === undefined ? {} : { structuredContent: answer.structuredContent }) } };
  })();
  // Too large to store would fail the append, and the redelivery would call the tool again: an error instead.
  const bytes = Buffer.byteLength(JSON.stringify(outcome));
  if (bytes > maxBytes) return { error: `the tool's ${"error" in outcome ? "error" : "result"} is ${bytes} bytes, more than the ${maxBytes} the mcp processor stores (MCP_MAX_RESULT_BYTES)` };
  return outcome;
}

function failureOf(err: unknown, call: McpCall, timeoutMs: number, lost: AbortSignal): string {
  if (lost.aborted) {
    const reason = lost.reason instanceof Error ? lost.reason.message : "the connection ended";
    return `the MCP server "${call.server}" went away during the call (${reason})`;
  }
  if (err instanceof McpError && err.code === (ErrorCode.RequestTimeout as number)) return `no result from the MCP server "${call.server}" within ${Math.round(timeoutMs / 1000)} s`;
  if (err instanceof McpError) return `the MCP server "${call.server}" answered error ${err.code}: ${err.message}`;
  return `calling ${call.mcpName} on the MCP server "${call.server}" failed: ${err instanceof Error ? err.message : String(err)}`;
}

/**
 * Calls one tool for one agent/tool-call-requested and returns its settlement. Progress becomes ephemeral
 * agent/tool-call-progressed events. An interrupting input, a settlement by someone else (a timeout) and a pause
 * cancel the call (the server is told) and nothing is appended: the loop settles an interrupted call, and a call cut
 * short by a pause is called again on resume (processors/mcp/processor.ts).
 */
export async function runMcpCall(call: McpCall, context: CallContext): Promise<EventInput[]> {
  const { nats, path, connection, timeoutMs, log } = context;
  let args: unknown;
  try {
    args = call.arguments.trim() === "" ? {} : JSON.parse(call.arguments);
  } catch {
    return settled(call.callId, { error: "the arguments are not valid JSON" });
  }
  if (typeof args !== "object" || args === null || Array.isArray(args)) return settled(call.callId, { error: "the arguments must be a JSON object" });

  const controller = new AbortController();
  const stop: { reason: StopReason | null } = { reason: null };
  const stopWith = (reason: StopReason): void => {
    stop.reason ??= reason;
    controller.abort(new Error(reason.detail));
  };
  const stopReason = (): StopReason | null => stop.reason;
  const stopWatching = await followStream(
    nats,
    path,
    call.offset,
    (event) => {
      if (event.type === AgentEventTypes.inputAdded && InputAddedSchema.safeParse(event.payload).data?.trigger === "interrupt") stopWith({ kind: "interrupted", detail: `cancelled: interrupted by input at offset ${event.offset}` });
      else if (event.type === SystemEventTypes.paused || event.type === SystemEventTypes.agentPaused) stopWith({ kind: "paused", detail: `the stream was paused at offset ${event.offset}` });
      else if (event.type === AgentEventTypes.toolCallSettled && ToolCallSettledSchema.safeParse(event.payload).data?.callId === call.callId) stopWith({ kind: "settled", detail: `settled at offset ${event.offset}` });
    },
    log,
  );
  try {
    const result = await connection.callTool(call.mcpName, args as Record<string, unknown>, {
      signal: controller.signal,
      timeoutMs,
      onProgress: (progress) => {
        try {
          publishEphemeral(nats, progressWriter, path, { type: AgentEventTypes.toolCallProgressed, payload: { callId: call.callId, ...progress } });
        } catch (err) {
          log.debug({ err }, "could not publish a progress event");
        }
      },
    });
    const reason = stopReason();
    if (reason !== null) return [];
    return settled(call.callId, outcomeOf(result, context.maxResultBytes));
  } catch (err) {
    const reason = stopReason();
    // The loop settles an interrupted call itself (processors/llm: every open call, as cancelled).
    if (reason !== null) return [];
    const error = failureOf(err, call, timeoutMs, connection.lost);
    log.warn({ err, callId: call.callId, tool: call.mcpName }, "MCP tool call failed");
    return settled(call.callId, { error });
  } finally {
    stopWatching();
  }
}
