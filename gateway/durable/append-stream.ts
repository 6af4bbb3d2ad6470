import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyReply, FastifyRequest } from "fastify";
import { appendEvents } from "../../shared/append.js";
import { EventInputSchema, type ValidEventInput } from "../../shared/envelope.js";
import { AgentmeshError } from "../../shared/errors.js";
import { lastMessage } from "../../shared/read.js";
import type { StreamPath } from "../../shared/subjects.js";
import { durablePathFromUrl } from "../stream-url.js";
import { formatOffset } from "./offsets.js";
import { setClosed, setTail, type DurableDeps } from "./protocol-context.js";
import { DsHeaders } from "./protocol-headers.js";
import { decideProducer, parseProducer, sameTuple } from "./producers.js";
import { encodeJsonValues, parseJsonValues } from "./stream-content.js";
import { AppendRace, changesSubject, ownSubject, publishMessage } from "./stream-log.js";
import { isJsonContentType, normaliseContentType, type DurableStreamRecord, type ProducerTuple } from "./stream-record.js";

/**
 * POST /v1/stream/<path>: append (204; 200 with producer headers), close
 * (`Stream-Closed: true`, with or without a body), or both. The checks run in
 * the protocol's order; state (producers, Stream-Seq, closed) is committed to
 * the stream's record only after the data is stored.
 */

interface AppendRequest {
  path: StreamPath;
  producer: ProducerTuple | undefined;
  body: Buffer;
  close: boolean;
  contentType: string | undefined;
  streamSeq: string | undefined;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export async function appendToStream(deps: DurableDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const producer = parseProducer(request.headers);
  const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  const wanted: AppendRequest = {
    path: durablePathFromUrl(request.url),
    producer,
    body,
    close: single(request.headers[DsHeaders.closed])?.toLowerCase() === "true",
    contentType: single(request.headers["content-type"]),
    streamSeq: single(request.headers[DsHeaders.seq]),
  };
  if (body.byteLength === 0 && !wanted.close) throw new AgentmeshError("BAD_REQUEST", "An append needs a body (to close the stream without appending, send Stream-Closed: true)");
  if (body.byteLength > 0 && wanted.contentType === undefined) throw new AgentmeshError("INVALID_HEADER", "An append needs a Content-Type matching the stream's");
  await deps.access.require(request, "append", { kind: "stream", path: wanted.path });

  return deps.store.locks.run(wanted.path, async () => {
    let race: { revision: number; since: number } | undefined;
    for (;;) {
      const found = await deps.store.lookup(wanted.path);
      if (found.kind === "absent") throw new AgentmeshError("STREAM_NOT_FOUND", `No stream at ${wanted.path}`);
      if (found.kind === "gone") throw new AgentmeshError("STREAM_GONE");
      if (found.kind === "agent") return appendToAgentStream(deps, wanted, reply);
      const orphaned = race?.revision === found.revision && Date.now() - race.since > ORPHAN_GRACE_MS;
      try {
        return await appendToRecord(deps, wanted, found.record, reply, orphaned ? await subjectTail(deps, found.record) : found.record.ownLastSeq);
      } catch (err) {
        // Another writer appended between our read and our write: decide again on what it committed.
        if (!(err instanceof AppendRace)) throw err;
        if (race?.revision !== found.revision) race = { revision: found.revision, since: Date.now() };
        await sleep(RACE_RETRY_MS);
      }
    }
  });
}

/**
 * How long the subject may stay ahead of an unchanged record before its extra
 * messages are taken as orphans: stored by an append whose commit never
 * happened (its gateway died, or NATS failed it with a 503). A live writer
 * commits within its NATS request timeouts, far sooner. An orphan becomes
 * readable with the next append, as a write whose outcome its client was
 * told is unknown may.
 */
const ORPHAN_GRACE_MS = 3000;
const RACE_RETRY_MS = 10;

async function subjectTail(deps: DurableDeps, record: DurableStreamRecord): Promise<number> {
  return Math.max(record.ownLastSeq, (await lastMessage(deps.nats, ownSubject(record.id)))?.seq ?? 0);
}

function closedConflict(record: DurableStreamRecord): AgentmeshError {
  return new AgentmeshError("STREAM_CLOSED", undefined, { headers: { [DsHeaders.closed]: "true", [DsHeaders.nextOffset]: formatOffset(record.tailSeq) } });
}

function setProducer(reply: FastifyReply, epoch: number, seq: number): void {
  void reply.header(DsHeaders.producerEpoch, String(epoch)).header(DsHeaders.producerSeq, String(seq));
}

async function appendToRecord(deps: DurableDeps, wanted: AppendRequest, record: DurableStreamRecord, reply: FastifyReply, expectLastSeq: number): Promise<FastifyReply> {
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
    throw new AgentmeshError("CONTENT_TYPE_MISMATCH", `The stream's content type is ${record.contentType}; got ${wanted.contentType ?? "none"}`);
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

  let appendedSeq: number | undefined;
  if (!closeOnly) {
    const data = isJsonContentType(record.contentType) ? encodeJsonValues(parseJsonValues(wanted.body, false)) : wanted.body;
    const msgId = producer === undefined ? undefined : `${record.id}|${producer.id}|${producer.epoch}|${producer.seq}`;
    appendedSeq = (await publishMessage(deps.nats, ownSubject(record.id), data, { expectLastSeq, ...(msgId === undefined ? {} : { msgId }) })).seq;
  }
  const now = Date.now();
  const committed = await deps.store.update(wanted.path, (r) => {
    if (r.id !== record.id) return r;
    const next: DurableStreamRecord = { ...r, lastAccessMs: Math.max(r.lastAccessMs, now) };
    if (appendedSeq !== undefined) {
      next.ownLastSeq = Math.max(r.ownLastSeq, appendedSeq);
      next.tailSeq = Math.max(r.tailSeq, appendedSeq);
      if (wanted.streamSeq !== undefined) next.streamSeq = wanted.streamSeq;
    }
    if (producer !== undefined) next.producers = { ...r.producers, [producer.id]: { epoch: producer.epoch, seq: producer.seq } };
    if (wanted.close) {
      next.closed = true;
      if (producer !== undefined) next.closedBy = producer;
    }
    return next;
  });
  if (committed === null) throw new AgentmeshError("STREAM_NOT_FOUND", `${wanted.path} was deleted during the append`);
  deps.nats.nc.publish(changesSubject(record.id));

  setTail(reply, committed.tailSeq);
  setClosed(reply, committed.closed && wanted.close);
  if (producer === undefined) return reply.code(204).send();
  setProducer(reply, producer.epoch, producer.seq);
  return reply.code(closeOnly ? 204 : 200).send();
}

/** An agent stream through the protocol: each JSON value is an event to append, as with POST /streams/<path>. */
async function appendToAgentStream(deps: DurableDeps, wanted: AppendRequest, reply: FastifyReply): Promise<FastifyReply> {
  if (wanted.close) throw new AgentmeshError("STREAM_APPEND_ONLY");
  if (wanted.producer !== undefined || wanted.streamSeq !== undefined) {
    throw new AgentmeshError("INVALID_HEADER", "Agent event streams take no producer or Stream-Seq headers; give each event an idempotencyKey instead");
  }
  if (!isJsonContentType(wanted.contentType ?? "")) throw new AgentmeshError("CONTENT_TYPE_MISMATCH", "Agent event streams take application/json events");
  const inputs = parseJsonValues(wanted.body, false).map((value, index): ValidEventInput => {
    const parsed = EventInputSchema.safeParse(value);
    if (!parsed.success) throw new AgentmeshError("INVALID_EVENT", `Value ${index} is not an event {type, payload?, metadata?, idempotencyKey?}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
    return parsed.data;
  });
  const result = await appendEvents(deps.nats, wanted.path, inputs, { indexes: deps.indexes });
  setTail(reply, result.events.at(-1)?.offset ?? 0);
  return reply.code(204).send();
}
