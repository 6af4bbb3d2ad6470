import { createHash } from "node:crypto";

/**
 * Trace and span ids derived from the log alone (docs/EVENTS.md, "Trace context"), so that exporting a stream's
 * history again gives the same ids, and a stream at another path (a fork) gets its own. Each id is the start of a
 * SHA-256 over lines: any language computes them from the stream path and offsets (the Go example does).
 *
 *   trace id (16 bytes) = sha256("agentmesh/trace\n<path>\n<root offset>")
 *   span id  (8 bytes)  = sha256("agentmesh/span\n<path>\n<kind>\n<key>")
 *
 * with kind `turn` (key: the root offset), `react` (key: "<processor>\n<causation offset>"), `chat` (key: the
 * offset of `agent/llm-request-started`) and `tool` (key: the offset of `agent/tool-call-requested`).
 */

export type SpanIdKind = "turn" | "react" | "chat" | "tool";

function digestHex(text: string, bytes: number): string {
  const hex = createHash("sha256").update(text).digest("hex").slice(0, bytes * 2);
  // An all-zero id is invalid in W3C Trace Context (a chance of 2^-64, but a fixed rule costs nothing).
  return /^0+$/.test(hex) ? `${hex.slice(0, -1)}1` : hex;
}

/** The trace of the turn rooted at `rootOffset` of `path`. */
export function traceIdOf(path: string, rootOffset: number): string {
  return digestHex(`agentmesh/trace\n${path}\n${rootOffset}`, 16);
}

export function spanIdOf(path: string, kind: SpanIdKind, key: string | number): string {
  return digestHex(`agentmesh/span\n${path}\n${kind}\n${key}`, 8);
}

/** The span of `processor`'s reaction to the event at `causationOffset`: what that reaction's `traceparent` names. */
export function reactionSpanId(path: string, processor: string, causationOffset: number): string {
  return spanIdOf(path, "react", `${processor}\n${causationOffset}`);
}

export interface TraceContext {
  traceId: string;
  spanId: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** W3C Trace Context `traceparent`, version 00, sampled (every turn is exported). */
export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-01`;
}

/** A valid version-00 `traceparent`, or undefined (anything else, all-zero ids included, is ignored, as W3C says). */
export function parseTraceparent(value: unknown): TraceContext | undefined {
  if (typeof value !== "string") return undefined;
  const match = TRACEPARENT.exec(value);
  if (match === null) return undefined;
  const [, traceId = "", spanId = ""] = match;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId };
}
