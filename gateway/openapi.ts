import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance, FastifySchema } from "fastify";
import { z } from "zod";
import { EventEnvelopeSchema, EventInputSchema } from "../shared/contract/envelope.js";
import { ErrorCodes } from "../shared/contract/errors.js";

/**
 * The OpenAPI document, generated from the same zod schemas the routes parse
 * with (z.toJSONSchema), served at /docs (UI) and /docs/json. The schemas are
 * documentation only: validation stays in the routes, so errors keep our codes.
 */

type JsonSchema = Record<string, unknown>;

function json(schema: z.ZodType): JsonSchema {
  // OpenAPI 3 embeds schemas without their own `$schema` dialect line.
  return Object.fromEntries(Object.entries(z.toJSONSchema(schema, { unrepresentable: "any", io: "input" })).filter(([key]) => key !== "$schema"));
}

const ErrorBodySchema = z.object({ error: z.object({ code: z.enum(Object.keys(ErrorCodes) as [keyof typeof ErrorCodes, ...(keyof typeof ErrorCodes)[]]), message: z.string() }) });
const ReadPageBodySchema = z.object({ events: z.array(EventEnvelopeSchema), nextOffset: z.number().int(), upToDate: z.boolean() });
const StreamListBodySchema = z.object({ streams: z.array(z.object({ path: z.string(), lastOffset: z.number().int(), eventCount: z.number().int(), lastEventAt: z.string().nullable(), paused: z.boolean() })), nextCursor: z.string().optional() });

const errorResponse = { description: "An error with a stable code (see docs/EVENTS.md, Errors)", ...json(ErrorBodySchema) };
const streamPathParam = { type: "object", properties: { "*": { type: "string", description: "The stream path without its leading /, e.g. agents/bot-1 (or agents/** for a subtree on GET)" } } };

export const RouteDocs = {
  append: {
    summary: "Append one event or a batch (up to 1000), or resume a paused stream (…/resume)",
    tags: ["streams"],
    params: streamPathParam,
    querystring: { type: "object", properties: { expectOffset: { type: "string" }, ephemeral: { type: "string", enum: ["true", "false", "1", "0"] } } },
    headers: { type: "object", properties: { "if-match": { type: "string", description: "Append only if the stream's last offset is this (0: empty)" } } },
    body: { oneOf: [json(EventInputSchema), { type: "array", items: json(EventInputSchema), maxItems: 1000 }] },
    response: { 200: { description: "Every event was an idempotent retry", ...json(EventEnvelopeSchema) }, 201: { description: "Stored", ...json(EventEnvelopeSchema) }, 202: { description: "Ephemeral event published" }, "4xx": errorResponse, "5xx": errorResponse },
  },
  read: {
    summary: "Read a page of history, or tail live over SSE (?live=sse or Accept: text/event-stream); `<path>/state?processor=&at=` answers each processor's state of the stream right after an offset",
    tags: ["streams"],
    params: streamPathParam,
    querystring: { type: "object", properties: { after: { type: "string" }, at: { type: "string", format: "date-time" }, limit: { type: "string" }, live: { type: "string", enum: ["sse"] } } },
    response: { 200: { description: "A page (JSON) or an event stream (SSE)", ...json(ReadPageBodySchema) }, "4xx": errorResponse, "5xx": errorResponse },
  },
  list: {
    summary: "The streams that exist, with last offset and event count",
    tags: ["streams"],
    querystring: { type: "object", properties: { prefix: { type: "string" }, limit: { type: "string" }, cursor: { type: "string" } } },
    response: { 200: json(StreamListBodySchema), "4xx": errorResponse, "5xx": errorResponse },
  },
  me: {
    summary: "The bearer token's subject and grants (what a client may offer its user); anonymous with every right when auth is off",
    tags: ["auth"],
    response: { 200: { description: "{authEnabled, subject, grants}" }, "4xx": errorResponse },
  },
  processors: {
    summary: "Every processor's and webhook subscription's durable consumer: pending, ack pending, redelivered, ack floor, replicas pulling (admin on /**)",
    tags: ["operations"],
    response: { 200: { description: "{processors: [...]}" }, "4xx": errorResponse, "5xx": errorResponse },
  },
  rewindProcessor: {
    summary: "Move a processor's durable consumer back to an offset or a time, so that it considers every event from there again; events it already reacted to are recognised (admin on /**; docs/ARCHITECTURE.md, Rewinding a processor)",
    tags: ["operations"],
    params: { type: "object", properties: { name: { type: "string", description: "The processor's name, as GET /processors lists it (webhook subscriptions cannot be rewound)" } } },
    body: { type: "object", required: ["to"], additionalProperties: false, properties: { to: { oneOf: [{ type: "integer", minimum: 1, description: "An offset" }, { type: "string", format: "date-time", description: "An RFC 3339 time, not in the future" }] } } },
    response: { 200: { description: "{processor, consumer, to, before: {ackFloor, delivered, pending, ackPending}, start, pending, attempts}" }, "4xx": errorResponse, "5xx": errorResponse },
  },
  hooks: {
    summary: "Inbound webhook: any body, stored as webhook/received, once an admin opened the stream's endpoint (webhook/inbound-configured)",
    tags: ["webhooks"],
    params: streamPathParam,
    response: { 200: { description: "A repeated webhook-id" }, 201: { description: "Stored" }, "4xx": errorResponse },
  },
  mcp: {
    summary: "The agent at <path> as an MCP server (Streamable HTTP, stateless): tools ask, read-events and list-streams (read on the stream; ask needs append too). README, Every agent is an MCP server",
    tags: ["mcp"],
    params: streamPathParam,
    body: { description: "A JSON-RPC message or batch (MCP)", type: ["object", "array"] },
    response: { 200: { description: "The JSON-RPC response, as JSON or an SSE stream (text/event-stream) carrying progress notifications first" }, 202: { description: "A notification or response was accepted" }, "4xx": errorResponse },
  },
  mcpStream: {
    summary: "405: the stateless MCP server opens no stream for server-initiated messages (after the same authorization as POST)",
    tags: ["mcp"],
    params: streamPathParam,
    response: { 405: { description: "Method not allowed (JSON-RPC error body)" }, "4xx": errorResponse },
  },
} satisfies Record<string, FastifySchema & { summary: string; tags: string[] }>;

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  // Route schemas document; zod in the routes validates and serialisation stays plain JSON.
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  await app.register(swagger, {
    openapi: {
      info: { title: "agentmesh gateway", version: "0.1.0", description: "Agents as append-only event streams. The contract: docs/EVENTS.md." },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
}
