import { api } from "../api/client.js";
import type { StoredEvent } from "../api/types.js";

/**
 * The stream's events with `after < offset <= through`, read forward page by page; with `keepLast`, only the last
 * that many are kept while a long range streams past.
 */
export async function readBetween(path: string, after: number, through: number, keepLast = Number.POSITIVE_INFINITY): Promise<StoredEvent[]> {
  const found: StoredEvent[] = [];
  for (let next = after; ; ) {
    const page = await api.read(path, { after: next }, 1000);
    for (const event of page.events) if (event.offset <= through) found.push(event);
    const last = page.events.at(-1);
    if (last === undefined || last.offset >= through || page.upToDate) return found;
    next = page.nextOffset;
    if (found.length > keepLast * 4) found.splice(0, found.length - keepLast);
  }
}

/**
 * The last `want` events of a stream at or before `until`. Reads go forward only (JetStream has no reverse
 * read), and a stream's offsets are sparse (they are the log's sequence numbers, shared by every stream), so it
 * reads the window `(until - span, until]` and widens it fourfold until it holds enough or reaches the start.
 * On a busy stream the first window suffices: one or two reads.
 */
export async function eventsBefore(path: string, until: number, want: number): Promise<{ events: StoredEvent[]; reachedStart: boolean }> {
  for (let span = want * 2; ; span *= 4) {
    const after = Math.max(0, until - span);
    const found = await readBetween(path, after, until, want);
    if (found.length >= want || after === 0) return { events: found.slice(-want), reachedStart: after === 0 && found.length <= want };
  }
}
