import { AgentmeshError } from "../../shared/contract/errors.js";

/**
 * Durable Streams offsets. The protocol wants opaque, fixed-width strings that
 * sort like the positions they name; ours are `<16 digits>_<16 digits>` where
 * the second half is the JetStream stream sequence of the last message read
 * (so a durable-stream offset and an event offset name the same position) and
 * the first half is always zero, kept for the protocol's shape.
 */

const WIDTH = 16;
const OFFSET = /^(\d+)_(\d+)$/;

export function formatOffset(seq: number): string {
  return `${"0".repeat(WIDTH)}_${String(seq).padStart(WIDTH, "0")}`;
}

export const ZERO_OFFSET = formatOffset(0);

/** Where a read starts: after a sequence, or at the tail (`offset=now`). */
export type ReadFrom = { after: number } | { now: true };

/** A sequence from an offset in our form; larger than any sequence if beyond what JavaScript counts exactly. */
export function parseOffset(raw: string, what: string): number {
  const match = OFFSET.exec(raw);
  if (match === null) throw new AgentmeshError("INVALID_QUERY", `${what} must be an offset like ${ZERO_OFFSET}, -1 or now; got ${JSON.stringify(raw.slice(0, 64))}`);
  const seq = Number(match[2]);
  if (Number(match[1]) > 0 || !Number.isSafeInteger(seq)) return Number.MAX_SAFE_INTEGER;
  return seq;
}

/** The `offset` query parameter: absent or -1 = the start, `now` = the tail. Given twice: refused. */
export function parseReadOffset(values: string[]): ReadFrom {
  if (values.length > 1) throw new AgentmeshError("INVALID_QUERY", "offset may be given only once");
  const raw = values[0];
  if (raw === undefined || raw === "-1") return { after: 0 };
  if (raw === "now") return { now: true };
  return { after: parseOffset(raw, "offset") };
}

/** Stream-Cursor intervals count from this instant, 20 s each, as the protocol's reference does. */
const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9);
const CURSOR_INTERVAL_MS = 20_000;

/**
 * A CDN-collapsing cursor: the current interval number, or, when the client
 * already holds that interval (or a later one), a strictly greater one with
 * jitter so that clients stop re-requesting the same cached URL.
 */
export function nextCursor(clientCursor: string | undefined): string {
  const interval = Math.floor((Date.now() - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS);
  const client = clientCursor !== undefined && /^\d{1,15}$/.test(clientCursor) ? Number(clientCursor) : undefined;
  if (client === undefined || client < interval) return String(interval);
  const jitterIntervals = Math.max(1, Math.ceil((1 + Math.random() * 3599) / 20));
  return String(client + jitterIntervals);
}
