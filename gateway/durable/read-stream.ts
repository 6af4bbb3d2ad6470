import type { FastifyReply, FastifyRequest } from "fastify";
import { AgentmeshError } from "../../shared/contract/errors.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { durablePathFromUrl } from "../stream-url.js";
import { formatOffset, nextCursor, parseReadOffset } from "./offsets.js";
import { sendBody, setClosed, setTail, type DurableDeps } from "./protocol-context.js";
import { DsHeaders } from "./protocol-headers.js";
import { openReadable, readFromNotice, type ReadableStream } from "./readable-stream.js";
import { responseBody } from "./stream-content.js";
import { readView, type ReadResult } from "./stream-log.js";
import { isJsonContentType } from "./stream-record.js";
import { streamSse } from "./sse-stream.js";

/** Messages per catch-up response at most; a client continues from Stream-Next-Offset. */
const READ_MAX_MESSAGES = 10_000;

export type LiveMode = "long-poll" | "sse";

function liveModeOf(raw: string | null): LiveMode | undefined {
  if (raw === null) return undefined;
  if (raw === "long-poll" || raw === "sse") return raw;
  throw new AgentmeshError("INVALID_QUERY", "live must be long-poll or sse");
}

/** GET /v1/stream/<path>: catch-up (`offset`), long-poll (`live=long-poll`) or SSE (`live=sse`). */
export async function readStream(deps: DurableDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const path = durablePathFromUrl(request.url);
  const query = new URL(request.url, "http://gateway").searchParams;
  await deps.access.require(request, "read", { kind: "stream", path });
  const stream = await openReadable(deps, path);
  const offsets = query.getAll("offset");
  const from = parseReadOffset(offsets);
  const live = liveModeOf(query.get("live"));
  if (live !== undefined && offsets.length === 0) throw new AgentmeshError("INVALID_QUERY", `live=${live} needs an offset (-1 for the start, now for the tail)`);
  if (stream.record !== undefined) await deps.store.touch(path, stream.record);

  const after = "now" in from ? stream.view.tailSeq : from.after;
  if (live !== undefined) {
    const release = await deps.connections.acquire(request);
    try {
      if (live === "sse") {
        await streamSse(deps, request, reply, path, stream, after);
        return undefined;
      }
      return await longPoll(deps, request, reply, path, stream, after, offsets[0] === "-1", query.get("cursor") ?? undefined);
    } finally {
      release();
    }
  }

  if ("now" in from) {
    setTail(reply, stream.view.tailSeq);
    void reply.header(DsHeaders.upToDate, "true").header("cache-control", "no-store");
    setClosed(reply, stream.closed);
    return sendBody(reply, 200, stream.contentType, responseBody([], isJsonContentType(stream.contentType)));
  }
  const result = await readView(deps.nats, stream.view, after, { maxBytes: deps.readMaxBytes, maxMessages: READ_MAX_MESSAGES });
  return sendRead(deps, request, reply, stream, after, result, undefined);
}

function sendRead(deps: DurableDeps, request: FastifyRequest, reply: FastifyReply, stream: ReadableStream, after: number, result: ReadResult, cursor: string | undefined): FastifyReply {
  const closedAtEnd = stream.closed && result.upToDate;
  // Identifies the bytes of this answer: incarnation, range, and whether it ends the stream.
  const etag = `"${stream.id}:${formatOffset(after)}:${formatOffset(result.nextSeq)}${closedAtEnd ? ":c" : ""}"`;
  setTail(reply, result.nextSeq);
  if (result.upToDate) void reply.header(DsHeaders.upToDate, "true");
  setClosed(reply, closedAtEnd);
  if (cursor !== undefined) void reply.header(DsHeaders.cursor, cursor);
  // With auth on, a cache shared between clients must never answer one client with what another could read.
  const scope = deps.authEnabled ? "private" : "public";
  void reply.header("etag", etag).header("cache-control", result.upToDate ? "no-cache" : `${scope}, max-age=60, stale-while-revalidate=300`);
  if (deps.authEnabled) void reply.header("vary", "authorization");
  if (request.headers["if-none-match"] === etag) return reply.code(304).send();
  return sendBody(reply, 200, stream.contentType, responseBody(result.chunks, isJsonContentType(stream.contentType)));
}

/**
 * Answer at once if there is data after the offset; otherwise wait (up to the
 * long-poll timeout) for this stream to change: 200 with the new data, or 204.
 */
async function longPoll(deps: DurableDeps, request: FastifyRequest, reply: FastifyReply, path: StreamPath, first: ReadableStream, after: number, fromStart: boolean, clientCursor: string | undefined): Promise<FastifyReply> {
  const limits = { maxBytes: deps.readMaxBytes, maxMessages: READ_MAX_MESSAGES };
  const abort = new AbortController();
  const onClose = (): void => { abort.abort(); };
  reply.raw.on("close", onClose);
  const listener = await deps.signals.listen(first.wakeSubject);
  try {
    const deadline = Date.now() + deps.longPollTimeoutMs;
    // Read again now that the change subscription is in place, so an append committed before it is not missed.
    let stream = await openReadable(deps, path);
    for (;;) {
      if (after < stream.view.tailSeq || fromStart) {
        const result = await readView(deps.nats, stream.view, after, limits);
        if (result.chunks.length > 0 || fromStart) return await sendRead(deps, request, reply, stream, after, result, nextCursor(clientCursor));
      }
      if (stream.closed) break;
      const outcome = await listener.next(Math.max(0, deadline - Date.now()), abort.signal);
      if (outcome !== "changed") break;
      const noticed = readFromNotice(stream, listener.takeNotice(), after);
      if (noticed !== null && noticed.result.chunks.length > 0) return await sendRead(deps, request, reply, noticed.stream, after, noticed.result, nextCursor(clientCursor));
      stream = await openReadable(deps, path);
    }
    if (stream.record !== undefined) await deps.store.touch(path, stream.record);
    setTail(reply, Math.max(after, stream.view.tailSeq));
    setClosed(reply, stream.closed);
    void reply.header(DsHeaders.upToDate, "true").header(DsHeaders.cursor, nextCursor(clientCursor)).header("cache-control", "no-cache");
    return await reply.code(204).send();
  } finally {
    listener.close();
    reply.raw.off("close", onClose);
  }
}
