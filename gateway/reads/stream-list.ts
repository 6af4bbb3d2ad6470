import { AgentmeshError } from "../../shared/contract/errors.js";
import { decodeStoredMsg, lastMessage } from "../../shared/log/read.js";
import { natsFailure, type Nats } from "../../shared/nats/connection.js";
import type { StreamListBody, StreamSummary } from "../../shared/contract/http-bodies.js";
import { eventsSubject, pathOfSubject, selectorSubject, type StreamPath } from "../../shared/contract/subjects.js";

/** Lookups of last offsets in flight at once: bounded so a large page does not flood the server. */
const LOOKUP_CONCURRENCY = 32;

async function subjectCounts(nats: Nats, filter: string): Promise<Record<string, number>> {
  if (!nats.isConnected()) throw new AgentmeshError("NATS_UNAVAILABLE");
  try {
    const info = await nats.jsm.streams.info(nats.streamName, { subjects_filter: filter });
    return info.state.subjects ?? {};
  } catch (err) {
    throw natsFailure(err);
  }
}

/**
 * The streams that exist (have at least one event), sorted by path. `prefix`
 * selects a stream and every stream below it. Counts come from JetStream's
 * per-subject state; last offsets from one direct get per listed stream.
 */
export async function listStreams(nats: Nats, options: { prefix: StreamPath | null; limit: number; cursor?: string; visible: (path: StreamPath) => boolean; paused: (path: StreamPath) => boolean }): Promise<StreamListBody> {
  const counts =
    options.prefix === null
      ? await subjectCounts(nats, selectorSubject({ kind: "subtree", prefix: null }, "events"))
      : {
          ...(await subjectCounts(nats, eventsSubject(options.prefix))),
          ...(await subjectCounts(nats, selectorSubject({ kind: "subtree", prefix: options.prefix }, "events"))),
        };
  const all = Object.entries(counts)
    .map(([subject, count]) => ({ path: pathOfSubject(subject), count }))
    .filter((entry): entry is { path: StreamPath; count: number } => entry.path !== null)
    // Before paging: a page, and its cursor, name only streams the caller may see.
    .filter((entry) => options.visible(entry.path))
    .filter((entry) => options.cursor === undefined || entry.path > options.cursor)
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const page = all.slice(0, options.limit);

  const streams: StreamSummary[] = new Array<StreamSummary>(page.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < page.length) {
      const index = next++;
      const entry = page[index] as { path: StreamPath; count: number };
      const last = await lastMessage(nats, eventsSubject(entry.path), "leader");
      streams[index] = { path: entry.path, lastOffset: last?.seq ?? 0, eventCount: entry.count, lastEventAt: last === null ? null : decodeStoredMsg(last).envelope.createdAt, paused: options.paused(entry.path) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOOKUP_CONCURRENCY, page.length) }, worker));
  const lastListed = page.at(-1);
  return all.length > page.length && lastListed !== undefined ? { streams, nextCursor: lastListed.path } : { streams };
}
