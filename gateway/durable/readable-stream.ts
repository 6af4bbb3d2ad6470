import { AgentmeshError } from "../../shared/contract/errors.js";
import { eventsSubject, type StreamPath } from "../../shared/contract/subjects.js";
import { AGENT_STREAM_CONTENT_TYPE, type DurableDeps } from "./protocol-context.js";
import { changesSubject, viewOfAgentStream, viewOfRecord, type StreamView } from "./stream-log.js";
import type { DurableStreamRecord } from "./stream-record.js";

/** A stream as its readers see it, whether a durable stream or an agent event stream. */
export interface ReadableStream {
  view: StreamView;
  contentType: string;
  closed: boolean;
  /** Distinguishes incarnations of a path in ETags. */
  id: string;
  /** Where a live reader hears that the stream changed. */
  wakeSubject: string;
  record: DurableStreamRecord | undefined;
}

/** The stream at a path for reading: 404 when there is none, 410 when deleted but kept for its forks. */
export async function openReadable(deps: DurableDeps, path: StreamPath): Promise<ReadableStream> {
  const found = await deps.store.lookup(path);
  if (found.kind === "absent") throw new AgentmeshError("STREAM_NOT_FOUND", `No stream at ${path}`);
  if (found.kind === "gone") throw new AgentmeshError("STREAM_GONE");
  if (found.kind === "agent") {
    // Agent streams append to events.<tokens>, whose captured messages also reach core subscribers.
    return { view: viewOfAgentStream(path, found.tailSeq), contentType: AGENT_STREAM_CONTENT_TYPE, closed: false, id: "events", wakeSubject: eventsSubject(path), record: undefined };
  }
  const { record } = found;
  return { view: viewOfRecord(record), contentType: record.contentType, closed: record.closed, id: record.id, wakeSubject: changesSubject(record.id), record };
}
