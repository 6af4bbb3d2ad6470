import type { FastifyReply, FastifyRequest } from "fastify";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { durablePathFromUrl } from "../stream-url.js";
import { AGENT_STREAM_CONTENT_TYPE, sendBody, setClosed, setTail, type DurableDeps } from "./protocol-context.js";
import { DsHeaders } from "./protocol-headers.js";
import { changesSubject } from "./stream-log.js";

/** HEAD /v1/stream/<path>: the stream's metadata, without renewing its TTL (only reads and writes do). */
export async function headStream(deps: DurableDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const path = durablePathFromUrl(request.url);
  await deps.access.require(request, "read", { kind: "stream", path });
  const found = await deps.store.lookup(path);
  if (found.kind === "absent") return reply.code(404).send();
  if (found.kind === "gone") return reply.code(410).send();
  void reply.header("cache-control", "no-store");
  if (found.kind === "agent") {
    setTail(reply, found.tailSeq);
    return sendBody(reply, 200, AGENT_STREAM_CONTENT_TYPE, Buffer.alloc(0));
  }
  const { record } = found;
  setTail(reply, record.tailSeq);
  setClosed(reply, record.closed);
  if (record.ttl !== undefined) void reply.header(DsHeaders.ttl, record.ttl);
  if (record.expiresAt !== undefined) void reply.header(DsHeaders.expiresAt, record.expiresAt);
  return sendBody(reply, 200, record.contentType, Buffer.alloc(0));
}

/**
 * DELETE /v1/stream/<path>: the stream is gone for its readers (its messages
 * stay in the log, as all history does). While forks read its data it is only
 * marked deleted (410), and removed when the last fork goes.
 */
export async function deleteStream(deps: DurableDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const path = durablePathFromUrl(request.url);
  await deps.access.require(request, "admin", { kind: "stream", path });
  return deps.store.locks.run(path, async () => {
    const found = await deps.store.lookup(path);
    if (found.kind === "absent") throw new AgentmeshError("STREAM_NOT_FOUND", `No stream at ${path}`);
    if (found.kind === "gone") throw new AgentmeshError("STREAM_GONE");
    if (found.kind === "agent") throw new AgentmeshError("STREAM_APPEND_ONLY");
    await deps.store.delete(path, found.record);
    deps.nats.nc.publish(changesSubject(found.record.id));
    return reply.code(204).send();
  });
}
