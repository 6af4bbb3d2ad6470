import { AgentmeshError } from "../../shared/contract/errors.js";
import { eventsSubject, type StreamPath } from "../../shared/contract/subjects.js";
import { AGENT_STREAM_CONTENT_TYPE, type DurableDeps } from "./protocol-context.js";
import { changesSubject, viewOfAgentStream, viewOfRecord, type ReadResult, type StreamView } from "./stream-log.js";
import { formatOf, type DurableStreamRecord } from "./stream-record.js";
import type { ChangeNotice } from "./change-notice.js";
import { chunkOf } from "./stream-content.js";

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
  return readableOfRecord(found.record);
}

function readableOfRecord(record: DurableStreamRecord): ReadableStream {
  return { view: viewOfRecord(record), contentType: record.contentType, closed: record.closed, id: record.id, wakeSubject: changesSubject(record.id), record };
}

/**
 * The stream after a change and what a reader at `after` gets, from the change's notice alone; null when the
 * notice cannot vouch for all of it (the reader was behind its tail, a message lies between the reader's record and
 * the notice's, the message was too large to repeat): then the record and the stream are read instead.
 */
export function readFromNotice(stream: ReadableStream, notice: ChangeNotice | null, after: number): { stream: ReadableStream; result: ReadResult } | null {
  if (notice === null || notice.data === null || stream.record === undefined) return null;
  const { record, seq, data } = notice;
  const continues = record.id === stream.id && after === stream.view.tailSeq && notice.prevSeq === stream.record.ownLastSeq;
  if (!continues || record.deleted || record.ownLastSeq !== seq || record.tailSeq !== seq) return null;
  const format = formatOf(record.contentType);
  if (format === "envelopes") return null;
  // An empty message is a close marker (append-stream.ts), not data.
  const chunks = data.byteLength === 0 ? [] : [chunkOf(seq, format, data, () => "")];
  return { stream: readableOfRecord(record), result: { chunks, nextSeq: seq, upToDate: true } };
}
