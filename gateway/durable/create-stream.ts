import { randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { parseStreamPath, type StreamPath } from "../../shared/contract/subjects.js";
import { DURABLE_PREFIX, durablePathFromUrl } from "../stream-url.js";
import { formatOffset, parseOffset } from "./offsets.js";
import { AGENT_STREAM_CONTENT_TYPE, headerValue, sendBody, setClosed, setTail, type DurableDeps } from "./protocol-context.js";
import { DsHeaders } from "./protocol-headers.js";
import { encodeJsonValues, parseJsonValues, prefixOf } from "./stream-content.js";
import { changesSubject, inheritedAt, ownSubject, publishMessage, readView, viewOfAgentStream, viewOfRecord, type StreamView } from "./stream-log.js";
import { isJsonContentType, normaliseContentType, type DurableStreamRecord } from "./stream-record.js";
import type { StreamLookup } from "./stream-store.js";

/** What a PUT asks for; compared with an existing stream to tell an idempotent retry from a conflict. */
interface CreateRequest {
  path: StreamPath;
  /** The Content-Type as sent, if it is a media type at all. */
  contentType: string | undefined;
  ttl: string | undefined;
  expiresAt: string | undefined;
  closed: boolean;
  fork: { from: StreamPath; offset: number | undefined; subOffset: number } | undefined;
  body: Buffer;
}

const DEFAULT_CONTENT_TYPE = "application/octet-stream";
const MEDIA_TYPE = /^[\w.+-]+\/[\w.+-]+/;
const DECIMAL = /^(0|[1-9]\d*)$/;

function sourcePathOf(raw: string): StreamPath {
  const path = raw.startsWith(`${DURABLE_PREFIX}/`) ? raw.slice(DURABLE_PREFIX.length) : raw.startsWith("/") ? raw : `/${raw}`;
  return parseStreamPath(path);
}

function parseCreateRequest(request: FastifyRequest): CreateRequest {
  const ttl = headerValue(request, DsHeaders.ttl);
  const expiresAt = headerValue(request, DsHeaders.expiresAt);
  if (ttl !== undefined && expiresAt !== undefined) throw new AgentmeshError("INVALID_HEADER", "Send Stream-TTL or Stream-Expires-At, not both");
  if (ttl !== undefined && (!DECIMAL.test(ttl) || !Number.isSafeInteger(Number(ttl)))) throw new AgentmeshError("INVALID_HEADER", "Stream-TTL must be a whole number of seconds, without sign or leading zeros");
  if (expiresAt !== undefined && Number.isNaN(Date.parse(expiresAt))) throw new AgentmeshError("INVALID_HEADER", "Stream-Expires-At must be an RFC 3339 timestamp");

  const forkedFrom = headerValue(request, DsHeaders.forkedFrom);
  const forkOffset = headerValue(request, DsHeaders.forkOffset);
  const subOffset = headerValue(request, DsHeaders.forkSubOffset);
  if (forkedFrom === undefined && (forkOffset !== undefined || subOffset !== undefined)) {
    throw new AgentmeshError("INVALID_HEADER", "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From");
  }
  if (subOffset !== undefined && (!DECIMAL.test(subOffset) || !Number.isSafeInteger(Number(subOffset)))) {
    throw new AgentmeshError("INVALID_HEADER", "Stream-Fork-Sub-Offset must be a whole number without sign or leading zeros");
  }
  const contentType = headerValue(request, "content-type");
  const body = request.body;
  return {
    path: durablePathFromUrl(request.url),
    contentType: contentType !== undefined && MEDIA_TYPE.test(contentType) ? contentType : undefined,
    ttl,
    expiresAt,
    closed: headerValue(request, DsHeaders.closed)?.toLowerCase() === "true",
    fork:
      forkedFrom === undefined
        ? undefined
        : {
            from: sourcePathOf(forkedFrom),
            offset: forkOffset === undefined ? undefined : parseOffset(forkOffset, "Stream-Fork-Offset"),
            subOffset: Number(subOffset ?? "0"),
          },
    body: Buffer.isBuffer(body) ? body : Buffer.alloc(0),
  };
}

/** PUT /v1/stream/<path>: create a stream (201), confirm an identical one (200), or refuse a different one (409). */
export async function createStream(deps: DurableDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const wanted = parseCreateRequest(request);
  await deps.access.require(request, "append", { kind: "stream", path: wanted.path });
  // A fork reads its source: creating one must not let a token read what it could not read directly.
  if (wanted.fork !== undefined) await deps.access.require(request, "read", { kind: "stream", path: wanted.fork.from });
  return deps.store.locks.run(wanted.path, async () => {
    for (;;) {
      const existing = await deps.store.lookup(wanted.path);
      if (existing.kind !== "absent") return confirmExisting(existing, wanted, reply);
      const created = await createNew(deps, wanted);
      if (created === null) continue; // another replica created it first: compare with theirs
      void reply.header("location", `${request.protocol}://${request.host}${request.url.split("?", 1)[0] ?? ""}`);
      setTail(reply, created.tailSeq);
      setClosed(reply, created.closed);
      return sendBody(reply, 201, created.contentType, Buffer.alloc(0));
    }
  });
}

function confirmExisting(existing: Exclude<StreamLookup, { kind: "absent" }>, wanted: CreateRequest, reply: FastifyReply): FastifyReply {
  if (existing.kind === "gone") throw new AgentmeshError("STREAM_EXISTS", `${wanted.path} was deleted but its forks still read it; its path cannot be reused until they are gone`);
  if (existing.kind === "agent") {
    const same = wanted.fork === undefined && wanted.ttl === undefined && wanted.expiresAt === undefined && !wanted.closed && (wanted.contentType === undefined || isJsonContentType(wanted.contentType));
    if (!same) throw new AgentmeshError("STREAM_EXISTS", `${wanted.path} is an agent event stream: application/json, no expiry, never closed`);
    setTail(reply, existing.tailSeq);
    return sendBody(reply, 200, AGENT_STREAM_CONTENT_TYPE, Buffer.alloc(0));
  }
  const record = existing.record;
  const difference = configDifference(record, wanted);
  if (difference !== null) throw new AgentmeshError("STREAM_EXISTS", `A stream exists at ${wanted.path} with a different ${difference}`);
  setTail(reply, record.tailSeq);
  setClosed(reply, record.closed);
  return sendBody(reply, 200, record.contentType, Buffer.alloc(0));
}

/** What differs between an existing stream and a PUT for it, or null when the PUT is a retry. */
function configDifference(record: DurableStreamRecord, wanted: CreateRequest): string | null {
  const wantedType = wanted.contentType ?? (wanted.fork !== undefined ? record.contentType : DEFAULT_CONTENT_TYPE);
  if (normaliseContentType(wantedType) !== normaliseContentType(record.contentType)) return "content type";
  // A fork with no expiry of its own inherited its source's; a retry need not repeat it.
  const inheritsExpiry = wanted.fork !== undefined && wanted.ttl === undefined && wanted.expiresAt === undefined;
  if (!inheritsExpiry && (wanted.ttl !== record.ttl || wanted.expiresAt !== record.expiresAt)) return "expiry (Stream-TTL / Stream-Expires-At)";
  if (wanted.closed && !record.closed) return "closed state";
  if (wanted.fork?.from !== record.fork?.from) return "fork source";
  if (wanted.fork !== undefined && record.fork !== undefined) {
    if (wanted.fork.offset !== undefined && wanted.fork.offset !== record.fork.offset) return "fork offset";
    if (wanted.fork.subOffset !== record.fork.subOffset) return "fork sub-offset";
  }
  return null;
}

interface ForkPlan {
  view: StreamView;
  contentType: string;
  ttl: string | undefined;
  expiresAt: string | undefined;
  sourceId: string | undefined;
  offset: number;
  /** What the fork inherits of the first message after the fork point (sub-offset), as its own first message. */
  prefix: Buffer | undefined;
}

async function planFork(deps: DurableDeps, wanted: CreateRequest & { fork: NonNullable<CreateRequest["fork"]> }): Promise<ForkPlan> {
  const source = await deps.store.lookup(wanted.fork.from);
  if (source.kind === "absent") throw new AgentmeshError("STREAM_NOT_FOUND", `No stream at ${wanted.fork.from} to fork from`);
  if (source.kind === "gone") throw new AgentmeshError("STREAM_EXISTS", `${wanted.fork.from} was deleted; it cannot be forked`);
  const view = source.kind === "agent" ? viewOfAgentStream(wanted.fork.from, source.tailSeq) : viewOfRecord(source.record);
  const sourceType = source.kind === "agent" ? AGENT_STREAM_CONTENT_TYPE : source.record.contentType;
  if (wanted.contentType !== undefined && normaliseContentType(wanted.contentType) !== normaliseContentType(sourceType)) {
    throw new AgentmeshError("CONTENT_TYPE_MISMATCH", `A fork has its source's content type (${sourceType})`);
  }
  const offset = wanted.fork.offset ?? view.tailSeq;
  if (offset > view.tailSeq) throw new AgentmeshError("INVALID_HEADER", `Stream-Fork-Offset ${formatOffset(offset)} is beyond the source's tail ${formatOffset(view.tailSeq)}`);
  let prefix: Buffer | undefined;
  if (wanted.fork.subOffset > 0) {
    const next = await readView(deps.nats, view, offset, { maxMessages: 1, maxBytes: Number.POSITIVE_INFINITY });
    const first = next.chunks[0];
    const cut = first === undefined ? null : prefixOf(first, wanted.fork.subOffset);
    if (cut === null) throw new AgentmeshError("INVALID_HEADER", "Stream-Fork-Sub-Offset is beyond the message after the fork offset");
    prefix = "values" in cut ? encodeJsonValues(cut.values) : Buffer.from(cut.bytes);
  }
  const explicitExpiry = wanted.ttl !== undefined || wanted.expiresAt !== undefined;
  const sourceRecord = source.kind === "durable" ? source.record : undefined;
  return {
    view,
    contentType: wanted.contentType ?? sourceType,
    ttl: explicitExpiry ? wanted.ttl : sourceRecord?.ttl,
    expiresAt: explicitExpiry ? wanted.expiresAt : sourceRecord?.expiresAt,
    sourceId: sourceRecord?.id,
    offset,
    prefix,
  };
}

/** Store the initial data, then the record; null if another request created the stream meanwhile. */
async function createNew(deps: DurableDeps, wanted: CreateRequest): Promise<DurableStreamRecord | null> {
  const fork = wanted.fork === undefined ? undefined : await planFork(deps, { ...wanted, fork: wanted.fork });
  const contentType = fork?.contentType ?? wanted.contentType ?? DEFAULT_CONTENT_TYPE;
  const messages: Buffer[] = [];
  if (fork?.prefix !== undefined) messages.push(fork.prefix);
  if (wanted.body.byteLength > 0) {
    if (isJsonContentType(contentType)) {
      const values = parseJsonValues(wanted.body, true);
      if (values.length > 0) messages.push(encodeJsonValues(values));
    } else messages.push(wanted.body);
  }

  // planFork already chose between the fork's own expiry and its source's.
  const expiry = fork ?? wanted;
  const id = randomBytes(12).toString("hex");
  let ownLastSeq = 0;
  for (const data of messages) ownLastSeq = (await publishMessage(deps.nats, ownSubject(id), data, { expectLastSeq: ownLastSeq })).seq;
  const now = Date.now();
  const record: DurableStreamRecord = {
    id,
    contentType,
    ...(expiry.ttl === undefined ? {} : { ttl: expiry.ttl }),
    ...(expiry.expiresAt === undefined ? {} : { expiresAt: expiry.expiresAt }),
    createdAtMs: now,
    lastAccessMs: now,
    ownLastSeq,
    tailSeq: Math.max(ownLastSeq, fork?.offset ?? 0),
    closed: wanted.closed,
    producers: {},
    ...(fork === undefined || wanted.fork === undefined ? {} : { fork: { from: wanted.fork.from, offset: fork.offset, subOffset: wanted.fork.subOffset } }),
    inherited: fork === undefined ? [] : inheritedAt(fork.view, fork.offset),
    forks: [],
    deleted: false,
  };
  if (!(await deps.store.create(wanted.path, record))) return null;
  if (fork?.sourceId !== undefined && wanted.fork !== undefined) {
    const source = wanted.fork.from;
    const sourceId = fork.sourceId;
    const held = await deps.store.locks.run(source, () => deps.store.addFork(source, sourceId, wanted.path, id));
    if (!held) {
      await deps.store.delete(wanted.path, record);
      throw new AgentmeshError("STREAM_NOT_FOUND", `${source} went away while it was being forked`);
    }
  }
  deps.nats.nc.publish(changesSubject(id));
  return record;
}
