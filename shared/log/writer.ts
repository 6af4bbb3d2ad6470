import { AgentmeshError } from "../contract/errors.js";
import type { StreamPath } from "../contract/subjects.js";
import { AdminEventTypes } from "../contract/wire.js";

/** What a grant can allow on a stream (docs/SECURITY.md, "Rights"). */
export type Right = "read" | "append" | "admin";

/**
 * Whoever appends: a client with a verified token, a third party posting a
 * webhook, or one of the mesh's own services. Every append names its writer
 * (`appendEvents` requires one), so the one authorization decision below runs
 * on every way in, whatever route or face the events came through.
 */
export interface Writer {
  /** Who, for errors and logs (a token's subject, `webhook`, a service's name). */
  readonly name: string;
  /** Whether the writer holds `right` on `path`. */
  may(right: Right, path: StreamPath): boolean;
  /** The most events one request may carry, refused before anything is stored. */
  readonly maxBatchEvents: number;
  /** Where its idempotency keys live: apart from the services' (undefined), so that no client can pre-empt theirs. */
  readonly keyScope?: string;
}

/** The right an event type needs: `admin` for the types that change how a stream is run, else `append`. */
export function rightFor(type: string): Right {
  return AdminEventTypes.has(type) ? "admin" : "append";
}

/** The refusal of a right the writer does not hold. */
export function forbidden(writer: Writer, right: Right, path: StreamPath): AgentmeshError {
  return new AgentmeshError("FORBIDDEN", `${writer.name} is not granted ${right} on ${path}`);
}

export function requireRight(writer: Writer, right: Right, path: StreamPath): void {
  if (!writer.may(right, path)) throw forbidden(writer, right, path);
}

/** The least a writer needs before its events are even parsed: some right to write to the stream. */
export function requireSomeWrite(writer: Writer, path: StreamPath): void {
  if (!writer.may("append", path) && !writer.may("admin", path)) throw new AgentmeshError("FORBIDDEN", `${writer.name} is granted neither append nor admin on ${path}`);
}

/** The size check every face makes, before parsing or storing anything. */
export function checkBatchSize(writer: Writer, count: number): void {
  if (count > writer.maxBatchEvents) {
    throw new AgentmeshError("BATCH_TOO_LARGE", `A request holds at most ${writer.maxBatchEvents} events; got ${count}`, { details: { maxEvents: writer.maxBatchEvents } });
  }
}

/** What of an event the authorization decision looks at. */
export interface AppendedEvent {
  type: string;
  source?: unknown;
}

/**
 * The right an event needs: `admin` for the types that change how a stream is run, and for any event that names a
 * processor as its `source`: a processor recognises its earlier reactions by their `source`, so a forged one would
 * make it skip an event for good (docs/SECURITY.md, "Routes").
 */
function rightForEvent(event: AppendedEvent): Right {
  return event.source !== undefined ? "admin" : rightFor(event.type);
}

/**
 * The authorization decision for an append, made before anything is
 * published: at most `maxBatchEvents` events, `append` for ordinary event
 * types and `admin` for each admin-only type or `source` (a batch mixing both needs both).
 */
export function authorizeAppend(writer: Writer, path: StreamPath, events: readonly AppendedEvent[]): void {
  requireSomeWrite(writer, path);
  checkBatchSize(writer, events.length);
  for (const right of new Set(events.map(rightForEvent))) requireRight(writer, right, path);
}

/**
 * One of the mesh's own services (a processor). NATS permissions, not tokens,
 * decide what a service may publish (deploy/nats/permissions.conf).
 */
export function serviceWriter(name: string): Writer {
  return { name, may: () => true, maxBatchEvents: Number.POSITIVE_INFINITY };
}
