import { z } from "zod";

/**
 * What the gateway keeps about a durable stream, in the KV bucket
 * `agentmesh-durable-streams` under the stream path's key, so that any gateway
 * replica can serve any request and a restart loses nothing. The data itself
 * is in the events JetStream stream, on the subject `durable.<id>`: a fresh id
 * per creation, so a stream deleted and created again never shows old data
 * (which stays in the log, as everything does).
 */

/** How message bodies on a subject are read: JSON value lists, opaque bytes, or agent event envelopes. */
export const SegmentFormatSchema = z.enum(["json", "bytes", "envelopes"]);
export type SegmentFormat = z.infer<typeof SegmentFormatSchema>;

/** Data a fork inherits: the messages on `subject` with sequence in (after, through]. */
export const InheritedSegmentSchema = z.object({
  subject: z.string(),
  after: z.number().int().nonnegative(),
  through: z.number().int().nonnegative(),
  format: SegmentFormatSchema,
});
export type InheritedSegment = z.infer<typeof InheritedSegmentSchema>;

/** `at`: when the producer was last seen (ms), to forget the stalest one when a stream has too many. */
export const ProducerStateSchema = z.object({ epoch: z.number().int().nonnegative(), seq: z.number().int().nonnegative(), at: z.number().optional() });
export type ProducerState = z.infer<typeof ProducerStateSchema>;

export const ProducerTupleSchema = z.object({ id: z.string(), epoch: z.number().int().nonnegative(), seq: z.number().int().nonnegative() });
export type ProducerTuple = z.infer<typeof ProducerTupleSchema>;

export const DurableStreamRecordSchema = z.object({
  /** Names the own subject, `durable.<id>`. */
  id: z.string().regex(/^[A-Za-z0-9]+$/),
  /** As the creator sent it; answered verbatim. */
  contentType: z.string(),
  /** Stream-TTL as sent (a sliding window in seconds), or Stream-Expires-At as sent. */
  ttl: z.string().optional(),
  expiresAt: z.string().optional(),
  createdAtMs: z.number(),
  /** Last GET or POST, for the sliding TTL window. */
  lastAccessMs: z.number(),
  /** Sequence of the last message on the own subject; 0 if none. */
  ownLastSeq: z.number().int().nonnegative(),
  /** The stream's tail: ownLastSeq, or the fork offset while a fork has no message of its own. */
  tailSeq: z.number().int().nonnegative(),
  closed: z.boolean(),
  /** The producer request that closed the stream; its retry is answered as a duplicate. */
  closedBy: ProducerTupleSchema.optional(),
  /** The last Stream-Seq accepted; later ones must sort after it. */
  streamSeq: z.string().optional(),
  producers: z.record(z.string(), ProducerStateSchema),
  /** Set on a fork: its source and the fork point (all the data it inherits is in `inherited`). */
  fork: z.object({ from: z.string(), offset: z.number().int().nonnegative(), subOffset: z.number().int().nonnegative() }).optional(),
  inherited: z.array(InheritedSegmentSchema),
  /** The forks that read this stream's data, as `<path>#<id>`; while any remains, deleting only marks it deleted. */
  forks: z.array(z.string()),
  deleted: z.boolean(),
});

export type DurableStreamRecord = z.infer<typeof DurableStreamRecordSchema>;

/** JSON mode: the stream's media type, without parameters and case, is application/json. */
export function normaliseContentType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

export function isJsonContentType(contentType: string): boolean {
  return normaliseContentType(contentType) === "application/json";
}

export function formatOf(contentType: string): SegmentFormat {
  return isJsonContentType(contentType) ? "json" : "bytes";
}

/** Whether the TTL window or the absolute expiry has passed. */
export function isExpired(record: DurableStreamRecord, nowMs: number): boolean {
  if (record.ttl !== undefined && nowMs >= record.lastAccessMs + Number(record.ttl) * 1000) return true;
  if (record.expiresAt !== undefined && nowMs >= Date.parse(record.expiresAt)) return true;
  return false;
}
