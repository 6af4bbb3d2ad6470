import type { FastifyReply, FastifyRequest } from "fastify";
import { AgentmeshError } from "../../shared/contract/errors.js";
import type { Logger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import type { SecretBox } from "../../shared/log/secrets.js";
import type { AccessControl } from "../auth/access.js";
import type { ConnectionLimiter } from "../limits.js";
import type { ChangeSignals } from "./change-signals.js";
import { formatOffset } from "./offsets.js";
import { DsHeaders } from "./protocol-headers.js";
import type { DurableStreamRecord } from "./stream-record.js";
import type { DurableStreamStore } from "./stream-store.js";

/** What every Durable Streams handler works with. */
export interface DurableDeps {
  nats: Nats;
  indexes: StreamIndexes;
  access: AccessControl;
  /** Live reads (long-poll, SSE) count against the client's live connections, as event-API tails do. */
  connections: ConnectionLimiter;
  /** Whether bearer tokens are checked: reads are then cacheable privately only. */
  authEnabled: boolean;
  secrets: SecretBox | null;
  store: DurableStreamStore;
  signals: ChangeSignals;
  logger: Logger;
  /** How long a long-poll waits for data before answering 204 (also the SSE keep-alive period). */
  longPollTimeoutMs: number;
  /** A catch-up response stops after the message that crosses this size; the client continues from its offset. */
  readMaxBytes: number;
}

/** The media type of an agent event stream seen through the protocol. */
export const AGENT_STREAM_CONTENT_TYPE = "application/json";

export function setTail(reply: FastifyReply, seq: number): void {
  void reply.header(DsHeaders.nextOffset, formatOffset(seq));
}

/** `Stream-Closed: true` only when closed: the protocol wants it absent, not false, on open streams. */
export function setClosed(reply: FastifyReply, closed: boolean): void {
  if (closed) void reply.header(DsHeaders.closed, "true");
}

/** Bodies go out as Buffers so that Fastify keeps the content type exactly as stored (no charset added). */
export function sendBody(reply: FastifyReply, status: number, contentType: string, body: Buffer): FastifyReply {
  return reply.code(status).header("content-type", contentType).send(body);
}

/** The first value of a request header (Node joins most repeated headers, but not all). */
export function headerValue(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** An append to a closed stream: 409 with the state a client recovers from in headers. */
export function closedConflict(record: DurableStreamRecord): AgentmeshError {
  return new AgentmeshError("STREAM_CLOSED", undefined, { headers: { [DsHeaders.closed]: "true", [DsHeaders.nextOffset]: formatOffset(record.tailSeq) } });
}

/** An append whose content type is not the stream's. */
export function contentTypeConflict(record: DurableStreamRecord, got: string | undefined): AgentmeshError {
  return new AgentmeshError("CONTENT_TYPE_MISMATCH", `The stream's content type is ${record.contentType}; got ${got ?? "none"}`);
}
