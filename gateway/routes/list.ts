import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { Nats } from "../../shared/nats/connection.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import { listStreams } from "../reads/stream-list.js";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { parseStreamPath, parseStreamPrefix } from "../../shared/contract/subjects.js";
import type { AccessControl } from "../auth/access.js";
import { RouteDocs } from "../openapi.js";
import { parseOr } from "../validation.js";

const ListQuerySchema = z.object({
  access_token: z.string().optional(),
  prefix: z.string().optional(),
  cursor: z.string().optional(),
  limit: z.string().regex(/^\d{1,4}$/, "must be an integer").transform(Number).pipe(z.number().int().min(1).max(1000)).optional(),
});

/** A cursor is the last path of the previous page (its `nextCursor`). */
function validCursor(cursor: string): void {
  try {
    parseStreamPath(cursor);
  } catch {
    throw new AgentmeshError("INVALID_QUERY", "cursor: must be the nextCursor of the previous page (a stream path)", { details: { field: "cursor" } });
  }
}

/** `GET /streams?prefix=/agents`: the streams that exist, with last offset and event count. */
export function registerListRoute(app: FastifyInstance, deps: { nats: Nats; access: AccessControl; indexes: StreamIndexes }): void {
  app.get("/streams", { schema: RouteDocs.list }, async (request) => {
    const query = parseOr(ListQuerySchema, request.query, "INVALID_QUERY", "");
    const prefix = query.prefix === undefined || query.prefix === "" || query.prefix === "/" ? null : parseStreamPrefix(query.prefix);
    if (query.cursor !== undefined) validCursor(query.cursor);
    // Authenticate first (401 without a token); then list only what the token may read, cursor included.
    const caller = await deps.access.writer(request);
    return listStreams(deps.nats, { prefix, limit: query.limit ?? 1000, visible: (path) => caller.may("read", path), paused: (path) => deps.indexes.pauseStatus(path)?.paused === true, ...(query.cursor === undefined ? {} : { cursor: query.cursor }) });
  });
}
