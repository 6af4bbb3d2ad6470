import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { appendEvents, publishEphemeral, type AppendHold } from "../../shared/log/append.js";
import { EventInputSchema } from "../../shared/contract/envelope.js";
import { AgentmeshError } from "../../shared/contract/errors.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { SecretBox } from "../../shared/log/secrets.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import { StreamResumedSchema } from "../../shared/contract/events/stream.js";
import { SystemEventTypes } from "../../shared/contract/wire.js";
import { authorizeAppend, checkBatchSize, requireSomeWrite } from "../../shared/log/writer.js";
import type { AccessControl } from "../auth/access.js";
import { forkedPathFromUrl, resumedPathFromUrl, streamPathFromUrl } from "../stream-url.js";
import { answerForkRequest } from "./fork.js";
import type { DurableStreamStore } from "../durable/stream-store.js";
import { RouteDocs } from "../openapi.js";
import { parseOr } from "../validation.js";

const offsetString = z.string().regex(/^\d{1,16}$/, "must be a non-negative integer").transform(Number);

const AppendQuerySchema = z.object({
  expectOffset: offsetString.optional(),
  ephemeral: z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1").optional(),
});

/** `If-Match: 5` or the ETag form `If-Match: "5"`. */
const IfMatchSchema = z
  .string()
  .regex(/^"?\d{1,16}"?$/, 'must be an offset, like 5 or "5"')
  .transform((v) => Number(v.replaceAll('"', "")));

const BatchSchema = z.array(EventInputSchema).min(1, "a batch needs at least one event");

/**
 * Events are JSON. Fastify also parses text/plain, as a string, which would otherwise read as an invalid event
 * rather than as the wrong content type.
 */
function requireJsonBody(request: FastifyRequest): void {
  const contentType = request.headers["content-type"];
  if (contentType === undefined) return;
  const essence = (contentType.split(";", 1)[0] ?? "").trim().toLowerCase();
  if (essence !== "application/json") throw new AgentmeshError("UNSUPPORTED_MEDIA_TYPE", `Events are sent as application/json, not ${essence}`);
}

/**
 * `POST /streams/<path>`: append one event or an array of events, in order.
 * 201 when anything new was stored, 200 when every event was an idempotent
 * retry (the reply then shows what was stored the first time).
 */
export function registerAppendRoute(app: FastifyInstance, deps: { nats: Nats; indexes: StreamIndexes; access: AccessControl; secrets: SecretBox | null; forkMaxEvents: number; durableStore: DurableStreamStore; hold: AppendHold }): void {
  app.post("/streams/*", { schema: RouteDocs.append }, async (request, reply) => {
    requireJsonBody(request);
    const forked = forkedPathFromUrl(request.url);
    if (forked !== null) {
      const result = await answerForkRequest(request, forked, deps);
      return reply.code(result.created ? 201 : 200).send({ forked: result.forked, events: result.events });
    }
    const writer = await deps.access.writer(request);
    const resumed = resumedPathFromUrl(request.url);
    if (resumed !== null) {
      const resume = [{ type: SystemEventTypes.resumed, payload: parseOr(StreamResumedSchema, request.body ?? {}, "INVALID_EVENT", "") }];
      // Decided before the pause state is looked at, so that only an admin learns it.
      authorizeAppend(writer, resumed, [{ type: SystemEventTypes.resumed }]);
      // A person's act: appends stream/resumed, after which appends and reactions continue.
      if (deps.indexes.pauseStatus(resumed)?.paused !== true) throw new AgentmeshError("STREAM_NOT_PAUSED", `The stream ${resumed} is not paused`);
      const result = await appendEvents(deps.nats, resumed, resume, { writer, indexes: deps.indexes, secrets: deps.secrets, ...deps.hold });
      return reply.code(201).send(result.events[0]);
    }
    const path = streamPathFromUrl(request.url);
    // The full decision is appendEvents'; refusing a token that may not write here spares parsing its body.
    requireSomeWrite(writer, path);
    const query = parseOr(AppendQuerySchema, request.query, "INVALID_QUERY", "");
    const ifMatch = request.headers["if-match"];
    const headerOffset = ifMatch === undefined ? undefined : parseOr(IfMatchSchema, ifMatch, "INVALID_HEADER", "If-Match");
    if (headerOffset !== undefined && query.expectOffset !== undefined && headerOffset !== query.expectOffset) {
      throw new AgentmeshError("INVALID_QUERY", "If-Match and ?expectOffset= disagree");
    }
    const expectOffset = headerOffset ?? query.expectOffset;

    const body: unknown = request.body;
    if (body === undefined || body === null) throw new AgentmeshError("INVALID_EVENT", "The body must be an event object or an array of events");
    const isBatch = Array.isArray(body);
    if (isBatch) checkBatchSize(writer, body.length);
    const inputs = isBatch ? parseOr(BatchSchema, body, "INVALID_EVENT", "events") : [parseOr(EventInputSchema, body, "INVALID_EVENT", "")];

    if (query.ephemeral === true) {
      if (isBatch || expectOffset !== undefined) throw new AgentmeshError("INVALID_QUERY", "An ephemeral event is one event, with no expected offset");
      const input = inputs[0] as (typeof inputs)[number];
      if (input.idempotencyKey !== undefined) {
        throw new AgentmeshError("INVALID_EVENT", "idempotencyKey: an ephemeral event is never stored, so there is nothing to deduplicate", { details: { field: "idempotencyKey" } });
      }
      const { createdAt } = publishEphemeral(deps.nats, writer, path, input, deps.indexes);
      return reply.code(202).send({ streamPath: path, ephemeral: true, type: input.type, createdAt });
    }

    const result = await appendEvents(deps.nats, path, inputs, { writer, indexes: deps.indexes, secrets: deps.secrets, ...deps.hold, ...(expectOffset === undefined ? {} : { expectOffset }) });
    // The envelopes' JSON is already built from the stored text; sending it as is skips a second serialisation.
    return reply
      .code(result.stored > 0 ? 201 : 200)
      .type("application/json")
      .send(isBatch ? `[${result.json.join(",")}]` : result.json[0]);
  });
}
