import { AgentmeshError } from "../../shared/contract/errors.js";
import type { SegmentFormat } from "./stream-record.js";

/**
 * How protocol bodies become stored messages and back. A JSON-mode append
 * is stored as one message holding a compact JSON array of its values (an
 * array body is flattened one level, as the protocol says), so a fork's
 * sub-offset can cut inside it; other content types are stored as the bytes
 * that came in, never decoded.
 */

/** One stored message as a reader needs it: JSON values (comma-joined, no brackets) or raw bytes. */
export type Chunk = { seq: number; json: string } | { seq: number; bytes: Uint8Array };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The JSON values of a JSON-mode body; [] only where the caller allows it (creation). */
export function parseJsonValues(body: Buffer, allowEmpty: boolean): unknown[] {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(body));
  } catch (err) {
    throw new AgentmeshError("INVALID_JSON", `The body is not valid JSON: ${err instanceof Error ? err.message : "unreadable"}`);
  }
  if (!Array.isArray(value)) return [value];
  if (value.length === 0 && !allowEmpty) throw new AgentmeshError("INVALID_JSON", "An empty JSON array appends nothing; send at least one value");
  return value;
}

/** Values as compact JSON, comma-joined, no brackets; one nested too deep to serialise is INVALID_JSON, not a crash. */
export function jsonValuesText(values: readonly unknown[]): string {
  try {
    return values.map((v) => JSON.stringify(v)).join(",");
  } catch (err) {
    if (err instanceof RangeError) throw new AgentmeshError("INVALID_JSON", "The body nests values too deeply to store");
    throw err;
  }
}

export function encodeJsonValues(values: readonly unknown[]): Buffer {
  return Buffer.from(`[${jsonValuesText(values)}]`);
}

/** A stored message of the given format, as a chunk. */
export function chunkOf(seq: number, format: SegmentFormat, data: Uint8Array, envelopeJson: () => string): Chunk {
  if (format === "bytes") return { seq, bytes: data };
  if (format === "envelopes") return { seq, json: envelopeJson() };
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8");
  return { seq, json: text.slice(1, -1) };
}

export function chunkSize(chunk: Chunk): number {
  return "json" in chunk ? chunk.json.length : chunk.bytes.byteLength;
}

/** A catch-up response body: a JSON array of every value, or the bytes end to end. */
export function responseBody(chunks: readonly Chunk[], jsonMode: boolean): Buffer {
  if (jsonMode) {
    const parts = chunks.map((c) => ("json" in c ? c.json : "")).filter((p) => p.length > 0);
    return Buffer.from(`[${parts.join(",")}]`);
  }
  return Buffer.concat(chunks.map((c) => ("bytes" in c ? c.bytes : new Uint8Array())));
}

/** The first `count` values or bytes of a message: what a fork with a sub-offset inherits of it. */
export function prefixOf(chunk: Chunk, count: number): { values: unknown[] } | { bytes: Uint8Array } | null {
  if ("json" in chunk) {
    const values = JSON.parse(`[${chunk.json}]`) as unknown[];
    return count <= values.length ? { values: values.slice(0, count) } : null;
  }
  return count <= chunk.bytes.byteLength ? { bytes: chunk.bytes.slice(0, count) } : null;
}
