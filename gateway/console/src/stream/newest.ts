import { api } from "../api/client.js";
import type { StoredEvent } from "../api/types.js";

/**
 * The last `want` events of a stream at or before `until`. Reads go forward only (JetStream has no reverse
 * read), and a stream's offsets are sparse (they are the log's sequence numbers, shared by every stream), so it
 * reads the window `(until - span, until]` and doubles the span until it holds enough or reaches the start.
 * On a busy stream the first window suffices: one or two reads.
 */
export async function eventsBefore(path: string, until: number, want: number): Promise<{ events: StoredEvent[]; reachedStart: boolean }> {
  let span = want * 2;
  for (;;) {
    const after = Math.max(0, until - span);
    const found: StoredEvent[] = [];
    let next = after;
    for (;;) {
      const page = await api.read(path, { after: next }, 1000);
      for (const event of page.events) if (event.offset <= until) found.push(event);
      const last = page.events.at(-1);
      if (page.events.length === 0 || last === undefined || last.offset >= until || page.upToDate) break;
      next = page.nextOffset;
      // Keep only what is wanted while a large window streams past.
      if (found.length > want * 4) found.splice(0, found.length - want);
    }
    if (found.length >= want || after === 0) return { events: found.slice(-want), reachedStart: after === 0 && found.length <= want };
    span *= 4;
  }
}
