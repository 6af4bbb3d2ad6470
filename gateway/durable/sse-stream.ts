import type { FastifyReply, FastifyRequest } from "fastify";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { formatOffset, nextCursor } from "./offsets.js";
import type { DurableDeps } from "./protocol-context.js";
import { DsHeaders } from "./protocol-headers.js";
import { openReadable, type ReadableStream } from "./readable-stream.js";
import type { Chunk } from "./stream-content.js";
import { readView } from "./stream-log.js";
import { normaliseContentType } from "./stream-record.js";

/**
 * `live=sse`: catch up, then follow, as Server-Sent Events. Every `data`
 * event (one stored message) is followed by a `control` event carrying the
 * offset after it, so a client that reconnects from its last control offset
 * misses nothing and sees nothing twice. A closed stream ends with a control
 * that says so, after the last data.
 */

const SSE_BATCH_MESSAGES = 1000;

/** Text and JSON go as text; anything else as base64, so that every byte survives. */
function usesBase64(contentType: string): boolean {
  const type = normaliseContentType(contentType);
  return !(type.startsWith("text/") || type === "application/json");
}

function dataEvent(chunk: Chunk, base64: boolean): string {
  let text: string;
  if ("json" in chunk) text = `[${chunk.json}]`;
  else if (base64) text = Buffer.from(chunk.bytes.buffer, chunk.bytes.byteOffset, chunk.bytes.byteLength).toString("base64");
  else text = Buffer.from(chunk.bytes.buffer, chunk.bytes.byteOffset, chunk.bytes.byteLength).toString("utf8");
  // One data: line per line of the payload, so a CR or LF in it can never start a field of its own.
  return `event: data\n${text.split(/\r\n|\r|\n/).map((line) => `data:${line}`).join("\n")}\n\n`;
}

function controlEvent(fields: Record<string, string | boolean>): string {
  return `event: control\ndata:${JSON.stringify(fields)}\n\n`;
}

export async function streamSse(deps: DurableDeps, request: FastifyRequest, reply: FastifyReply, path: StreamPath, first: ReadableStream, after: number): Promise<undefined> {
  const clientCursor = new URL(request.url, "http://gateway").searchParams.get("cursor") ?? undefined;
  const base64 = usesBase64(first.contentType);
  const listener = await deps.signals.listen(first.wakeSubject);
  const abort = new AbortController();
  reply.hijack();
  const raw = reply.raw;
  raw.on("close", () => { abort.abort(); });
  // Hijacked: the headers set so far (security, CORS) are written by hand.
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
    ...(base64 ? { [DsHeaders.sseDataEncoding]: "base64" } : {}),
  });
  raw.flushHeaders();

  let stream = first;
  let position = after;
  let sentControl = false;
  // A slow client that goes away never drains: its close must end the wait too.
  const write = (text: string): Promise<void> =>
    new Promise((resolve) => {
      if (raw.destroyed || raw.write(text)) {
        resolve();
        return;
      }
      const done = (): void => {
        raw.off("drain", done);
        raw.off("close", done);
        resolve();
      };
      raw.on("drain", done);
      raw.on("close", done);
    });
  try {
    // Read again now that the change subscription is in place, so an append committed before it is not missed.
    stream = await openReadable(deps, path);
    while (!abort.signal.aborted) {
      const result = position < stream.view.tailSeq ? await readView(deps.nats, stream.view, position, { maxBytes: deps.readMaxBytes, maxMessages: SSE_BATCH_MESSAGES }) : { chunks: [], nextSeq: Math.max(position, stream.view.tailSeq), upToDate: true };
      for (const [index, chunk] of result.chunks.entries()) {
        const last = index === result.chunks.length - 1;
        position = last ? result.nextSeq : chunk.seq;
        const upToDate = last && result.upToDate;
        if (upToDate && stream.closed) {
          await write(dataEvent(chunk, base64) + controlEvent({ streamNextOffset: formatOffset(position), streamClosed: true }));
          return;
        }
        await write(dataEvent(chunk, base64) + controlEvent({ streamNextOffset: formatOffset(position), streamCursor: nextCursor(clientCursor), ...(upToDate ? { upToDate: true } : {}) }));
        sentControl = true;
        if (raw.destroyed) return;
      }
      if (result.chunks.length === 0) {
        position = result.nextSeq;
        if (stream.closed) {
          await write(controlEvent({ streamNextOffset: formatOffset(position), streamClosed: true }));
          return;
        }
        if (!sentControl) {
          await write(controlEvent({ streamNextOffset: formatOffset(position), streamCursor: nextCursor(clientCursor), upToDate: true }));
          sentControl = true;
        }
      }
      if (!result.upToDate) continue;
      const outcome = await listener.next(deps.longPollTimeoutMs, abort.signal);
      if (outcome === "aborted") return;
      if (outcome === "timeout") {
        // A keep-alive: same offset, so proxies see traffic and clients a fresh cursor.
        await write(controlEvent({ streamNextOffset: formatOffset(position), streamCursor: nextCursor(clientCursor), upToDate: true }));
      }
      stream = await openReadable(deps, path);
      if (stream.record !== undefined) await deps.store.touch(path, stream.record);
    }
  } catch (err) {
    // The stream went away (deleted, expired) or NATS failed: end the response; the client reconnects and learns why.
    request.log.debug({ err }, "durable SSE ended");
  } finally {
    listener.close();
    raw.end();
  }
  return undefined;
}
