/**
 * The benchmark's event shape. Every stored event, whether written raw or
 * through the gateway, is the same ~256-byte JSON body, so JetStream does the
 * same storage work on both paths.
 */

export const STORED_EVENT_BYTES = 256;
export const EVENT_TYPE = "bench";

/** What the gateway stores: the input plus a `createdAt` like 2026-01-31T12:00:00.000Z. */
const SAMPLE_CREATED_AT = new Date(0).toISOString();

function storedLength(payload: Record<string, unknown>): number {
  return Buffer.byteLength(JSON.stringify({ type: EVENT_TYPE, payload, createdAt: SAMPLE_CREATED_AT }));
}

/** Padding that brings the stored body of `{type, payload: {...extra, data}}` to STORED_EVENT_BYTES. */
export function padding(extra: Record<string, unknown> = {}): string {
  const overhead = storedLength({ ...extra, data: "" });
  return "x".repeat(Math.max(0, STORED_EVENT_BYTES - overhead));
}

const PLAIN_DATA = padding();

/** The HTTP body of one plain benchmark event. */
export function eventInput(): { type: string; payload: { data: string } } {
  return { type: EVENT_TYPE, payload: { data: PLAIN_DATA } };
}

/** The exact bytes the gateway would store for `eventInput()`, for raw publishing. */
export function storedEventBytes(): Uint8Array {
  const body = JSON.stringify({ type: EVENT_TYPE, payload: { data: PLAIN_DATA }, createdAt: new Date().toISOString() });
  return new TextEncoder().encode(body);
}

/** A batch body of `n` plain events, serialised once and reused by every request. */
export function batchBody(n: number): string {
  return JSON.stringify(Array.from({ length: n }, eventInput));
}

/** An event carrying its index, for scenarios that match what they receive to what they sent. */
export function indexedInput(i: number): { type: string; payload: { i: number; data: string } } {
  return { type: EVENT_TYPE, payload: { i, data: padding({ i }) } };
}
