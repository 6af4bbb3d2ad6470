import type { FastifyReply, FastifyRequest } from "fastify";
import { AgentmeshError } from "../../shared/contract/errors.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import { requireRight, requireSomeWrite, type Writer } from "../../shared/log/writer.js";
import { durablePathFromUrl } from "../stream-url.js";
import { appendToAgentStream } from "./agent-stream-append.js";
import type { AppendBatcher } from "./append-batch.js";
import { closedConflict, contentTypeConflict, headerValue, setClosed, setTail, type DurableDeps } from "./protocol-context.js";
import { storeAndCommit, writeToCurrentRecord, type CurrentRecord } from "./record-writes.js";
import { DsHeaders } from "./protocol-headers.js";
import { decideProducer, parseProducer, sameTuple, withProducer } from "./producers.js";
import { encodeJsonValues, jsonValuesText, parseJsonValues } from "./stream-content.js";
import { isJsonContentType, normaliseContentType, type DurableStreamRecord, type ProducerTuple } from "./stream-record.js";

/**
 * POST /v1/stream/<path>: append (204; 200 with producer headers), close
 * (`Stream-Closed: true`, with or without a body), or both. The checks run in
 * the protocol's order; state (producers, Stream-Seq, closed) is committed to
 * the stream's record only after the data is stored.
 */

interface AppendRequest {
  writer: Writer;
  path: StreamPath;
  producer: ProducerTuple | undefined;
  body: Buffer;
  close: boolean;
  contentType: string | undefined;
  streamSeq: string | undefined;
}

export async function appendToStream(deps: DurableDeps, appends: AppendBatcher, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const producer = parseProducer(request.headers);
  const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  const writer = await deps.access.writer(request);
  const wanted: AppendRequest = {
    writer,
    path: durablePathFromUrl(request.url),
    producer,
    body,
    close: headerValue(request, DsHeaders.closed)?.toLowerCase() === "true",
    contentType: headerValue(request, "content-type"),
    streamSeq: headerValue(request, DsHeaders.seq),
  };
  if (body.byteLength === 0 && !wanted.close) throw new AgentmeshError("BAD_REQUEST", "An append needs a body (to close the stream without appending, send Stream-Closed: true)");
  if (body.byteLength > 0 && wanted.contentType === undefined) throw new AgentmeshError("INVALID_HEADER", "An append needs a Content-Type matching the stream's");
  // Data appends to a Durable Stream need append; for an agent stream the full decision is appendEvents'.
  requireSomeWrite(writer, wanted.path);

  if (producer === undefined && wanted.streamSeq === undefined && !wanted.close && wanted.contentType !== undefined) {
    const values = isJsonContentType(wanted.contentType) ? parseJsonValues(body, false) : undefined;
    const data = values === undefined ? body : Buffer.from(jsonValuesText(values));
    const tail = await appends.append(deps, wanted.path, { writer, contentType: wanted.contentType, data, values });
    setTail(reply, tail);
    return reply.code(204).send();
  }
  return deps.store.locks.run(wanted.path, () =>
    writeToCurrentRecord(deps, wanted.path, {
      onAgentStream: () => appendToAgentFace(deps, wanted, reply),
      onRecord: (found, expectLastSeq) => appendToRecord(deps, wanted, found, reply, expectLastSeq),
    }),
  );
}

function setProducer(reply: FastifyReply, epoch: number, seq: number): void {
  void reply.header(DsHeaders.producerEpoch, String(epoch)).header(DsHeaders.producerSeq, String(seq));
}

async function appendToRecord(deps: DurableDeps, wanted: AppendRequest, found: CurrentRecord, reply: FastifyReply, expectLastSeq: number): Promise<FastifyReply> {
  requireRight(wanted.writer, "append", wanted.path);
  const { record } = found;
  const { producer } = wanted;
  if (record.closed) {
    // The retry of the request that closed the stream is answered as it was, whatever its body.
    if (sameTuple(producer, record.closedBy) && producer !== undefined) {
      setTail(reply, record.tailSeq);
      setClosed(reply, true);
      setProducer(reply, producer.epoch, producer.seq);
      return reply.code(204).send();
    }
    if (wanted.body.byteLength === 0 && producer === undefined) {
      await deps.store.touch(wanted.path, record);
      setTail(reply, record.tailSeq);
      setClosed(reply, true);
      return reply.code(204).send();
    }
    throw closedConflict(record);
  }
  const closeOnly = wanted.body.byteLength === 0;
  if (!closeOnly && normaliseContentType(wanted.contentType ?? "") !== normaliseContentType(record.contentType)) {
    throw contentTypeConflict(record, wanted.contentType);
  }
  if (producer !== undefined) {
    const decision = decideProducer(record.producers[producer.id], producer);
    if (decision.kind === "duplicate") {
      await deps.store.touch(wanted.path, record);
      setTail(reply, record.tailSeq);
      setProducer(reply, producer.epoch, decision.lastSeq);
      return reply.code(204).send();
    }
  }
  if (!closeOnly && wanted.streamSeq !== undefined && record.streamSeq !== undefined && wanted.streamSeq <= record.streamSeq) {
    throw new AgentmeshError("STREAM_SEQ_CONFLICT", `Stream-Seq ${JSON.stringify(wanted.streamSeq)} does not sort after the last one, ${JSON.stringify(record.streamSeq)}`);
  }

  // Every change a later decision depends on goes through the subject, data or not: a close stores an empty
  // marker (readers skip it), so a writer on another replica that decided on the open stream loses its publish.
  const data = closeOnly ? Buffer.alloc(0) : isJsonContentType(record.contentType) ? encodeJsonValues(parseJsonValues(wanted.body, false)) : wanted.body;
  const msgId = producer === undefined ? undefined : `${record.id}|${producer.id}|${producer.epoch}|${producer.seq}`;
  const committed = await storeAndCommit(deps, wanted.path, found, data, { expectLastSeq, ...(msgId === undefined ? {} : { msgId }) }, (r, storedSeq, now) => {
    const next: DurableStreamRecord = { ...r, lastAccessMs: Math.max(r.lastAccessMs, now), ownLastSeq: Math.max(r.ownLastSeq, storedSeq) };
    if (!closeOnly) {
      next.tailSeq = Math.max(r.tailSeq, storedSeq);
      if (wanted.streamSeq !== undefined) next.streamSeq = wanted.streamSeq;
    }
    if (producer !== undefined) next.producers = withProducer(r.producers, producer, now);
    if (wanted.close) {
      next.closed = true;
      if (producer !== undefined) next.closedBy = producer;
    }
    return next;
  });

  setTail(reply, committed.tailSeq);
  setClosed(reply, committed.closed && wanted.close);
  if (producer === undefined) return reply.code(204).send();
  setProducer(reply, producer.epoch, producer.seq);
  return reply.code(closeOnly ? 204 : 200).send();
}

/** An agent stream through the protocol takes events only: no closing, no producers, no Stream-Seq. */
async function appendToAgentFace(deps: DurableDeps, wanted: AppendRequest, reply: FastifyReply): Promise<FastifyReply> {
  if (wanted.close) throw new AgentmeshError("STREAM_APPEND_ONLY");
  if (wanted.producer !== undefined || wanted.streamSeq !== undefined) {
    throw new AgentmeshError("INVALID_HEADER", "Agent event streams take no producer or Stream-Seq headers; give each event an idempotencyKey instead");
  }
  const contentType = wanted.contentType ?? "";
  const values = isJsonContentType(contentType) ? parseJsonValues(wanted.body, false) : undefined;
  setTail(reply, await appendToAgentStream(deps, wanted.writer, wanted.path, contentType, values));
  return reply.code(204).send();
}
