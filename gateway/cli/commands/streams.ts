import { text } from "node:stream/consumers";
import type { EventEnvelope } from "../../../shared/contract/envelope.js";
import type { StreamListBody, StreamSummary } from "../../../shared/contract/http-bodies.js";
import { eventLine, paint } from "../format.js";
import { call, CliError, streamUrl, type Target } from "../http.js";

/** `ls [prefix]`: every stream the token may read, page after page, with counts and last offsets. */
export async function listCommand(target: Target, prefix: string | undefined, options: { json: boolean }): Promise<void> {
  let cursor: string | undefined;
  const rows: StreamSummary[] = [];
  do {
    const query = new URLSearchParams({ limit: "1000" });
    if (prefix !== undefined && prefix !== "") query.set("prefix", prefix.startsWith("/") ? prefix : `/${prefix}`);
    if (cursor !== undefined) query.set("cursor", cursor);
    const page = await call<StreamListBody>(target, "GET", `/streams?${query.toString()}`);
    rows.push(...page.streams);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  if (options.json) {
    for (const row of rows) process.stdout.write(`${JSON.stringify(row)}\n`);
    return;
  }
  if (rows.length === 0) {
    process.stderr.write("no streams\n");
    return;
  }
  const width = Math.max(...rows.map((row) => row.path.length), 4);
  process.stdout.write(`${paint("dim", `${"PATH".padEnd(width)}  ${"EVENTS".padStart(8)}  ${"LAST".padStart(10)}`)}\n`);
  for (const row of rows) {
    process.stdout.write(`${row.path.padEnd(width)}  ${String(row.eventCount).padStart(8)}  ${String(row.lastOffset).padStart(10)}${row.paused ? `  ${paint("red", "paused")}` : ""}\n`);
  }
}

/** The payload argument: JSON, or `-` for JSON on stdin; none is `{}`. */
async function payloadOf(raw: string | undefined): Promise<unknown> {
  if (raw === undefined) return {};
  const source = raw === "-" ? await text(process.stdin) : raw;
  try {
    return JSON.parse(source);
  } catch (err) {
    throw new CliError("INVALID_JSON", `the payload is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** `append <path> <type> [payload]`: prints the stored event. */
export async function appendCommand(target: Target, path: string, type: string, rawPayload: string | undefined, options: { json: boolean }): Promise<void> {
  const stored = await call<EventEnvelope>(target, "POST", streamUrl(path), { type, payload: await payloadOf(rawPayload) });
  process.stdout.write(`${options.json ? JSON.stringify(stored) : eventLine(stored)}\n`);
}

/** `state <path> [--processor] [--at]`: each processor's state right after an offset, folded by the gateway. */
export async function stateCommand(target: Target, path: string, options: { processor?: string; at?: string }): Promise<void> {
  const query = new URLSearchParams();
  if (options.processor !== undefined) query.set("processor", options.processor);
  if (options.at !== undefined) query.set("at", options.at);
  const state = await call<StateWithUsage>(target, "GET", `${streamUrl(path, "/state")}?${query.toString()}`);
  process.stdout.write(`${JSON.stringify(state, null, 2)}\n`);
  // The agent's spending for a person, on stderr: stdout stays the JSON a script reads.
  const llm = state.processors.llm?.state;
  if (llm?.usage !== undefined) process.stderr.write(`${usageLine(llm.usage, llm.budget ?? null)}\n`);
}

interface StateWithUsage {
  processors: Record<string, { state?: { usage?: { promptTokens: number; completionTokens: number; costUsd: number }; budget?: { maxTokens?: number; maxCostUsd?: number } | null } } | undefined>;
}

function usageLine(usage: { promptTokens: number; completionTokens: number; costUsd: number }, budget: { maxTokens?: number; maxCostUsd?: number } | null): string {
  const limits = budget === null ? "no budget" : `budget ${[budget.maxTokens === undefined ? null : `${budget.maxTokens} tokens`, budget.maxCostUsd === undefined ? null : `$${budget.maxCostUsd}`].filter((part) => part !== null).join(", ") || "none"}`;
  return `usage: ${usage.promptTokens + usage.completionTokens} tokens (${usage.promptTokens} in, ${usage.completionTokens} out), $${usage.costUsd.toFixed(6)}; ${limits}`;
}

export async function pauseCommand(target: Target, path: string, options: { reason: string }): Promise<void> {
  const stored = await call<EventEnvelope>(target, "POST", streamUrl(path), { type: "stream/paused", payload: { reason: options.reason } });
  process.stdout.write(`${eventLine(stored)}\n`);
}

export async function resumeCommand(target: Target, path: string, options: { reason: string }): Promise<void> {
  const stored = await call<EventEnvelope>(target, "POST", streamUrl(path, "/resume"), { reason: options.reason });
  process.stdout.write(`${eventLine(stored)}\n`);
}
