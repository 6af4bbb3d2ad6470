import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { FastifyBaseLogger } from "fastify";
import { ensureError } from "../../shared/contract/errors.js";
import { toAgentmeshError } from "../http-errors.js";

/**
 * How the MCP tools answer. A tool's failure is a result with `isError` (the MCP spec's "tool execution error", which
 * a model can read and act on), not a JSON-RPC error, so our error codes reach the client in the text, first, as the
 * HTTP API puts them in `error.code`: `FORBIDDEN: The token does not grant append on /agents/bot-1`.
 */

/** A result whose text is the JSON of `value`, given as structured content too (MCP 2025-06-18, "Structured content"). */
export function jsonResult<T extends Record<string, unknown>>(value: T): CallToolResult & { structuredContent: T } {
  return { content: [{ type: "text", text: JSON.stringify(value) }], structuredContent: value };
}

/** A tool execution error: the text a person or a model reads. No structured content (it would not match the tool's output schema). */
export function errorResult(text: string): CallToolResult {
  return { content: [{ type: "text", text }], isError: true };
}

/**
 * Any failure as an error result, by the same rules as gateway/http-errors.ts: our errors keep their code and message;
 * anything else is a bug, logged with the request's logger and answered with a generic text, never its own.
 */
export function failureResult(err: unknown, log: FastifyBaseLogger): CallToolResult {
  const error = toAgentmeshError(ensureError(err));
  if (error.code === "INTERNAL") log.error({ err: error.cause ?? error, code: error.code }, "MCP tool failed");
  return errorResult(`${error.code}: ${error.message}`);
}

/** Run a tool's body, turning what it throws into an error result (the SDK would send an unexpected error's own text). */
export async function answering(log: FastifyBaseLogger, body: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await body();
  } catch (err) {
    return failureResult(err, log);
  }
}
