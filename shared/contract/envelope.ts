import { z } from "zod";
import type { StreamPath } from "./subjects.js";
import { SystemEventTypes } from "./wire.js";

/**
 * The event contract (docs/EVENTS.md). One schema per shape; types are inferred.
 *
 * On the wire a stored event is a JetStream message on `events.<tokens>` whose
 * body is the JSON of `StoredBody`. The envelope a reader sees adds
 * `streamPath` (from the subject) and `offset` (the JetStream stream sequence),
 * which writers cannot forge. `createdAt` is stamped by the writer (the gateway
 * or the processor runtime) so an append can answer with the stored envelope
 * without reading it back; a body without it falls back to the JetStream
 * timestamp.
 */

const IDEMPOTENCY_KEY = /^[\x20-\x7e]+$/;

export const EventSourceSchema = z
  .object({
    processor: z.string().min(1).max(256),
    causationOffset: z.number().int().nonnegative(),
  })
  .strict();

export const EventTypeSchema = z.string().min(1).max(256);

/** On an event a fork inherited: the stream and offset it was copied from (docs/ARCHITECTURE.md, "Forks"). */
export const ForkedFromSchema = z.object({ path: z.string(), offset: z.number().int().positive() });
export type ForkedFrom = z.output<typeof ForkedFromSchema>;
export const MetadataSchema = z.record(z.string(), z.unknown());

/** What a client sends to append one event. Unknown fields are refused, not ignored. */
export const EventInputSchema = z
  .object({
    type: EventTypeSchema,
    payload: z.unknown().default({}),
    metadata: MetadataSchema.optional(),
    idempotencyKey: z
      .string()
      .min(1)
      .max(256)
      .regex(IDEMPOTENCY_KEY, "printable ASCII only")
      .optional(),
    source: EventSourceSchema.optional(),
  })
  .strict();

export type EventInput = z.input<typeof EventInputSchema>;
export type ValidEventInput = z.output<typeof EventInputSchema>;

/** The JSON body of a stored message. Read leniently: fields added by newer writers are dropped, not fatal. */
export const StoredBodySchema = z.object({
  type: EventTypeSchema,
  payload: z.unknown().default({}),
  metadata: MetadataSchema.optional(),
  idempotencyKey: z.string().optional(),
  source: z.object({ processor: z.string(), causationOffset: z.number() }).optional(),
  createdAt: z.string().optional(),
  forkedFrom: ForkedFromSchema.optional(),
});

export type StoredBody = z.output<typeof StoredBodySchema>;

/** What readers get for every stored event. */
export const EventEnvelopeSchema = z.object({
  streamPath: z.string(),
  offset: z.number().int().positive(),
  type: EventTypeSchema,
  payload: z.unknown(),
  metadata: MetadataSchema.optional(),
  idempotencyKey: z.string().optional(),
  source: EventSourceSchema.optional(),
  createdAt: z.string(),
  /** Only on an event a fork inherited: history to reduce, never to react to. */
  forkedFrom: ForkedFromSchema.optional(),
});

export type EventEnvelope = z.output<typeof EventEnvelopeSchema>;

/** What SSE readers get for an ephemeral (live-only) event: no offset, never in history. */
export const EphemeralEnvelopeSchema = z.object({
  streamPath: z.string(),
  ephemeral: z.literal(true),
  type: EventTypeSchema,
  payload: z.unknown(),
  metadata: MetadataSchema.optional(),
  source: EventSourceSchema.optional(),
  createdAt: z.string(),
});

export type EphemeralEnvelope = z.output<typeof EphemeralEnvelopeSchema>;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function toStoredBody(input: ValidEventInput, createdAt: string): StoredBody {
  const body: StoredBody = { type: input.type, payload: input.payload };
  if (input.metadata !== undefined) body.metadata = input.metadata;
  if (input.idempotencyKey !== undefined) body.idempotencyKey = input.idempotencyKey;
  if (input.source !== undefined) body.source = input.source;
  body.createdAt = createdAt;
  return body;
}

export function encodeBody(body: StoredBody): Uint8Array {
  return encoder.encode(JSON.stringify(body));
}

/** The keys our writers put in a body; a body with any other key takes the slow, schema-checked path. */
const BODY_KEYS = new Set(["type", "payload", "metadata", "idempotencyKey", "source", "createdAt", "forkedFrom"]);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The shape our own writers produce, checked by hand because it runs for every
 * event read (catch-up of 100k events): a body that passes can be turned into
 * envelope JSON by splicing text, with no re-serialisation. Anything else goes
 * through StoredBodySchema.
 */
function isWellFormedBody(value: unknown): value is StoredBody & { createdAt: string } {
  if (!isPlainObject(value)) return false;
  for (const key in value) if (!BODY_KEYS.has(key)) return false;
  const { type, metadata, source, idempotencyKey, createdAt, forkedFrom } = value;
  return (
    typeof type === "string" &&
    type.length >= 1 &&
    type.length <= 256 &&
    "payload" in value &&
    typeof createdAt === "string" &&
    (metadata === undefined || isPlainObject(metadata)) &&
    (idempotencyKey === undefined || typeof idempotencyKey === "string") &&
    (source === undefined || (isPlainObject(source) && typeof source.processor === "string" && typeof source.causationOffset === "number")) &&
    (forkedFrom === undefined || (isPlainObject(forkedFrom) && typeof forkedFrom.path === "string" && typeof forkedFrom.offset === "number"))
  );
}

/** A stored event decoded once, with both its envelope object and its envelope JSON. */
export interface DecodedEvent {
  offset: number;
  envelope: EventEnvelope;
  json: string;
}

/**
 * Decode a stored message into its envelope. A message that is not a valid
 * event is shown as `stream/invalid-event` (see decodeBody). `storedAt` (the
 * storage time) may be given as a function: it is needed only for bodies
 * without createdAt.
 */
export function decodeStoredEvent(path: StreamPath, offset: number, storedAt: string | (() => string), data: Uint8Array): DecodedEvent {
  let text: string | undefined;
  let json: unknown;
  try {
    text = decoder.decode(data);
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (text !== undefined && text.charCodeAt(0) === 0x7b && isWellFormedBody(json)) {
    // Paths are unreserved characters only, so they need no JSON escaping.
    // A well-formed body carries createdAt, so the storage time is not needed (nor computed: it is a cost per event).
    return { offset, envelope: toEnvelope(path, offset, json.createdAt, json), json: `{"streamPath":"${path}","offset":${offset},${text.slice(1)}` };
  }
  const envelope = toEnvelope(path, offset, typeof storedAt === "string" ? storedAt : storedAt(), decodeBody(data));
  return { offset, envelope, json: JSON.stringify(envelope) };
}

/**
 * Decode a stored body. A message that is not a valid event (a foreign writer's
 * bug) is shown as `stream/invalid-event` carrying the raw bytes, never dropped
 * and never fatal to the reader.
 */
export function decodeBody(data: Uint8Array): StoredBody {
  let text: string;
  try {
    text = decoder.decode(data);
  } catch {
    return invalidBody("body is not UTF-8", { base64: Buffer.from(data).toString("base64") });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return invalidBody("body is not JSON", { text });
  }
  const parsed = StoredBodySchema.safeParse(json);
  if (!parsed.success) return invalidBody(`body is not an event: ${parsed.error.issues[0]?.message ?? "invalid"}`, { json });
  return parsed.data;
}

function invalidBody(reason: string, raw: Record<string, unknown>): StoredBody {
  return { type: SystemEventTypes.invalidEvent, payload: { reason, raw } };
}

/** `storedAt` (the JetStream timestamp) is used only when the writer did not stamp `createdAt`. */
export function toEnvelope(path: StreamPath, offset: number, storedAt: string, body: StoredBody): EventEnvelope {
  const createdAt = body.createdAt ?? storedAt;
  const envelope: EventEnvelope = { streamPath: path, offset, type: body.type, payload: body.payload, createdAt };
  if (body.metadata !== undefined) envelope.metadata = body.metadata;
  if (body.idempotencyKey !== undefined) envelope.idempotencyKey = body.idempotencyKey;
  if (body.source !== undefined) envelope.source = body.source;
  if (body.forkedFrom !== undefined) envelope.forkedFrom = body.forkedFrom;
  return envelope;
}

export function toEphemeralEnvelope(path: StreamPath, receivedAt: string, body: StoredBody): EphemeralEnvelope {
  const createdAt = body.createdAt ?? receivedAt;
  const envelope: EphemeralEnvelope = { streamPath: path, ephemeral: true, type: body.type, payload: body.payload, createdAt };
  if (body.metadata !== undefined) envelope.metadata = body.metadata;
  if (body.source !== undefined) envelope.source = body.source;
  return envelope;
}
