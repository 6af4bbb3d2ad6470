import type { FastifyInstance, FastifyRequest } from "fastify";
import Negotiator from "negotiator";
import { z } from "zod";
import { AgentmeshError } from "../../shared/contract/errors.js";
import type { Logger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import { eventsRead } from "../../shared/service/metrics.js";
import { readPage, type ReadStart } from "../reads/read-page.js";
import { Defaults } from "../../shared/contract/wire.js";
import { SseSession } from "../live/sse-session.js";
import type { TailHub } from "../live/tail-hub.js";
import type { ReadCursors } from "../reads/read-cursors.js";
import type { AccessControl } from "../auth/access.js";
import type { ConnectionLimiter } from "../limits.js";
import { selectorFromUrl, statePathFromUrl } from "../stream-url.js";
import { answerStateRequest } from "./state.js";
import type { BreakerLimits } from "../../shared/state/breaker.js";
import { RouteDocs } from "../openapi.js";
import { parseOr } from "../validation.js";

const offsetString = z.string().regex(/^\d{1,16}$/, "must be a non-negative integer").transform(Number);

const ReadQuerySchema = z
  .object({
    after: offsetString.optional(),
    at: z.iso.datetime({ offset: true, message: "must be an ISO 8601 date-time, like 2026-01-31T12:00:00Z" }).transform((v) => new Date(v)).optional(),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, "must be an integer")
      .transform(Number)
      .pipe(z.number().int().min(1).max(Defaults.maxReadLimit))
      .optional(),
    live: z.enum(["sse"], { message: 'the only live mode here is "sse"' }).optional(),
    /** For EventSource clients, which cannot send an Authorization header. */
    access_token: z.string().optional(),
  })
  .refine((q) => q.after === undefined || q.at === undefined, { message: "use either after or at, not both", path: ["at"] });

const LastEventIdSchema = z.string().regex(/^\d{1,16}$/, "must be an offset").transform(Number);

export interface ReadDeps {
  nats: Nats;
  access: AccessControl;
  connections: ConnectionLimiter;
  hub: TailHub;
  /** Paged reads keep their consumer for the next page. */
  cursors: ReadCursors;
  logger: Logger;
  heartbeatMs: number;
  maxBufferedBytes: number;
  /** For `/state`: the breaker's limits where a stream has not configured its own. */
  breakerDefaults: BreakerLimits;
}

/** JSON first: what a client that accepts both equally, or anything, gets. */
const READ_MEDIA_TYPES = ["application/json", "text/event-stream"];

function wantsSse(request: FastifyRequest, live: string | undefined): boolean {
  // HEAD (Fastify answers it with the GET route) gets the page's headers, never an endless stream.
  if (request.method === "HEAD") return false;
  if (live === "sse") return true;
  // q-values count: `text/event-stream;q=0` refuses a stream, `application/json;q=0.5, text/event-stream` prefers one.
  const accept = request.headers.accept;
  return accept !== undefined && new Negotiator({ headers: { accept } }).mediaType(READ_MEDIA_TYPES) === "text/event-stream";
}

/**
 * `GET /streams/<path>` (or `<prefix>/**`): a page of history as JSON, or with
 * `?live=sse` / `Accept: text/event-stream` catch-up followed by the live tail.
 */
export function registerReadRoute(app: FastifyInstance, deps: ReadDeps): void {
  app.get("/streams/*", { schema: RouteDocs.read }, async (request, reply) => {
    const statePath = statePathFromUrl(request.url);
    if (statePath !== null) return reply.send(await answerStateRequest(request, statePath, deps));
    const selector = selectorFromUrl(request.url);
    await deps.access.require(request, "read", selector);
    const query = parseOr(ReadQuerySchema, request.query, "INVALID_QUERY", "");

    if (wantsSse(request, query.live)) {
      const header = request.headers["last-event-id"];
      const resumeFrom = header === undefined || header === "" ? undefined : parseOr(LastEventIdSchema, header, "INVALID_HEADER", "Last-Event-ID");
      let after = resumeFrom ?? query.after ?? 0;
      if (resumeFrom === undefined && query.at !== undefined) {
        const page = await readPage(deps.nats, selector, { at: query.at }, 1).catch((err: unknown) => {
          if (err instanceof AgentmeshError && err.code === "STREAM_NOT_FOUND") return null;
          throw err;
        });
        const first = page?.events[0];
        after = first === undefined ? (page?.nextOffset ?? 0) : first.offset - 1;
      }
      const release = await deps.connections.acquire(request);
      let tail;
      try {
        tail = await deps.hub.acquire(selector);
      } catch (err) {
        release();
        throw err;
      }
      reply.hijack();
      reply.raw.once("close", release);
      const session = new SseSession(reply.raw, tail, {
        nats: deps.nats,
        hub: deps.hub,
        after,
        heartbeatMs: deps.heartbeatMs,
        maxBufferedBytes: deps.maxBufferedBytes,
        logger: request.log,
      });
      await session.run();
      return reply;
    }

    const start: ReadStart = query.at === undefined ? { after: query.after ?? 0 } : { at: query.at };
    const page = await readPage(deps.nats, selector, start, query.limit ?? Defaults.readLimit, deps.cursors);
    eventsRead.inc(page.events.length);
    // Envelopes are already JSON text; joining them avoids serialising up to 1,000 objects again.
    const events = page.events.map((event) => event.json).join(",");
    // With auth on, what one token may read must not be answered from a shared cache to another.
    if (deps.access.enabled) void reply.header("cache-control", "private, no-store").header("vary", "authorization");
    return reply.type("application/json").send(`{"events":[${events}],"nextOffset":${page.nextOffset},"upToDate":${page.upToDate}}`);
  });
}
