import type { DecodedEvent, EphemeralEnvelope } from "../../shared/contract/envelope.js";

/**
 * A live item ready to write: the SSE frame is built once per event and shared
 * by every client (1,000 clients on a stream cost one JSON.stringify, not 1,000).
 * JSON.stringify never emits a raw CR or LF, so `data:` is always one line
 * (WHATWG HTML §9.2 "event stream interpretation").
 */
export interface SseFrame {
  /** The event's offset; null for ephemeral events, which have no `id:` and are never replayed. */
  offset: number | null;
  text: string;
}

export function storedFrame(event: DecodedEvent): SseFrame {
  return { offset: event.offset, text: `id: ${event.offset}\ndata: ${event.json}\n\n` };
}

export function ephemeralFrame(event: EphemeralEnvelope): SseFrame {
  return { offset: null, text: `data: ${JSON.stringify(event)}\n\n` };
}

export const HEARTBEAT_FRAME = ": heartbeat\n\n";

/**
 * The live frames of one event-loop turn, written to each client in one
 * socket write: 1,000 clients and a burst of 50 events cost 1,000 writes, not
 * 50,000. `text` is every frame end to end.
 */
export interface SseBatch {
  frames: readonly SseFrame[];
  text: string;
  /** The first and last stored offsets in the batch; null if it holds only ephemeral frames. */
  firstOffset: number | null;
  lastOffset: number | null;
}

export function batchOf(frames: readonly SseFrame[]): SseBatch {
  let firstOffset: number | null = null;
  let lastOffset: number | null = null;
  let text = "";
  for (const frame of frames) {
    text += frame.text;
    if (frame.offset === null) continue;
    firstOffset ??= frame.offset;
    lastOffset = frame.offset;
  }
  return { frames, text, firstOffset, lastOffset };
}
