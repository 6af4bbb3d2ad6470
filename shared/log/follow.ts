import type { EventEnvelope } from "../contract/envelope.js";
import { eventsSubject, type StreamPath } from "../contract/subjects.js";
import type { Nats } from "../nats/connection.js";
import type { Logger } from "../service/logger.js";
import { lastOffset, readFew } from "./read.js";

/** A follower whose read failed (NATS trouble) tries again after this, even if nothing new wakes it. */
const RETRY_MS = 1_000;

/**
 * A wake with nothing new to read is read again after these delays: on a replicated stream the core message
 * arrives before the replicas have stored it (a direct get then still sees the old last offset: seen in 79 of 500
 * publishes on a 3-node cluster), and nothing else would wake the follower for it.
 */
const NOT_YET_STORED_RETRIES_MS = [20, 50, 100, 200, 400, 800];

/**
 * Follow one stream's stored events after an offset, for as long as something waits on them (a model request
 * watching for an interrupt), without creating anything on the server: a core subscription on the stream's
 * subject wakes the follower, which then reads what was stored since the last event it saw, by direct get
 * (shared/log/read.ts `readFew`). Following therefore costs no JetStream API call and leaves no consumer to
 * delete. A publish that JetStream refused (a conditional append that lost) wakes it but is never read; what was
 * stored while the connection was down is read after the reconnect. `onEvent` sees each event once, in order.
 */
export async function followStream(nats: Nats, path: StreamPath, afterOffset: number, onEvent: (event: EventEnvelope) => void, logger: Logger): Promise<() => void> {
  const subject = eventsSubject(path);
  const state = { stopped: false, reading: false, again: false, cursor: afterOffset, emptyReads: 0 };
  let retry: NodeJS.Timeout | undefined;
  /** Woken while reading: read once more (a function, since wakes happen across the awaits). */
  const readAgain = (): boolean => state.again && !state.stopped;

  const catchUp = async (): Promise<void> => {
    if (state.reading) {
      state.again = true;
      return;
    }
    state.reading = true;
    const before = state.cursor;
    try {
      do {
        state.again = false;
        const last = await lastOffset(nats, path);
        for await (const m of readFew(nats, subject, state.cursor + 1, last)) {
          if (state.stopped) return;
          state.cursor = m.seq;
          onEvent(m.decode().envelope);
        }
      } while (readAgain());
      if (state.cursor > before) state.emptyReads = 0;
      else if (!state.stopped && state.emptyReads < NOT_YET_STORED_RETRIES_MS.length) {
        clearTimeout(retry);
        retry = setTimeout(() => void catchUp(), NOT_YET_STORED_RETRIES_MS[state.emptyReads++]);
      }
    } catch (err) {
      logger.debug({ err, stream: path }, "stream follower could not read; trying again");
      clearTimeout(retry);
      retry = setTimeout(() => void catchUp(), RETRY_MS);
    } finally {
      state.reading = false;
    }
  };

  /** Something may have been stored: read, and read again a few times while what woke it is not yet stored. */
  const wake = (): void => {
    state.emptyReads = 0;
    void catchUp();
  };
  const subscription = nats.nc.subscribe(subject, { callback: wake });
  const unsubscribe = nats.onReconnect(wake);
  // The interest is registered before the first read, so nothing stored in between is missed.
  await nats.nc.flush();
  await catchUp();
  return () => {
    state.stopped = true;
    clearTimeout(retry);
    unsubscribe();
    subscription.unsubscribe();
  };
}
