import type { FastifyRequest } from "fastify";
import { z } from "zod";
import type { StreamPath } from "../../shared/contract/subjects.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { BreakerLimits } from "../../shared/state/breaker.js";
import { VIEWED_PROCESSORS } from "../../shared/state/views.js";
import type { AccessControl } from "../auth/access.js";
import type { StreamStateBody } from "../../shared/contract/http-bodies.js";
import { streamStateAt } from "../reads/stream-state.js";
import { parseOr } from "../validation.js";

const StateQuerySchema = z.object({
  processor: z.enum(VIEWED_PROCESSORS, { message: `one of ${VIEWED_PROCESSORS.join(", ")}` }).optional(),
  at: z.string().regex(/^\d{1,16}$/, "must be an offset").transform(Number).optional(),
  access_token: z.string().optional(),
});

export interface StateDeps {
  nats: Nats;
  access: AccessControl;
  breakerDefaults: BreakerLimits;
}

/**
 * `GET /streams/<path>/state?processor=<name>&at=<offset>`: each processor's
 * state of the stream right after the event at `at` (default: now), folded
 * from the log (the llm and breaker processors' own reducers; folds of the log for the scheduler and the pusher,
 * which keep KV indexes). Needs `read` on the stream.
 * The read route hands these URLs here (a path cannot end in `state`).
 */
export async function answerStateRequest(request: FastifyRequest, path: StreamPath, deps: StateDeps): Promise<StreamStateBody> {
  await deps.access.require(request, "read", { kind: "stream", path });
  const query = parseOr(StateQuerySchema, request.query, "INVALID_QUERY", "");
  return streamStateAt(deps.nats, path, {
    at: query.at,
    processors: query.processor === undefined ? VIEWED_PROCESSORS : [query.processor],
    breakerDefaults: deps.breakerDefaults,
    gone: () => request.raw.destroyed || request.socket.destroyed,
  });
}
