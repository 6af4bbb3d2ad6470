import { AgentmeshError } from "./errors.js";
import type { StreamPath } from "./subjects.js";
import { AdminEventTypes } from "./wire.js";

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
  /** Throws FORBIDDEN unless the writer holds `right` on `path`. */
  require(right: Right, path: StreamPath): void;
  /** Whether the writer may read `path`: an idempotent retry shows the stored event only to a reader. */
  mayRead(path: StreamPath): boolean;
  /** The most events one request may carry, refused before anything is stored. */
  readonly maxBatchEvents: number;
}

/** The right an append of these event types needs: `admin` if any changes how the stream is run. */
export function rightNeeded(types: Iterable<string>): Right {
  for (const type of types) if (AdminEventTypes.has(type)) return "admin";
  return "append";
}

/** The size check every face makes, before parsing or storing anything. */
export function checkBatchSize(writer: Writer, count: number): void {
  if (count > writer.maxBatchEvents) {
    throw new AgentmeshError("BATCH_TOO_LARGE", `A request holds at most ${writer.maxBatchEvents} events; got ${count}`, { details: { maxEvents: writer.maxBatchEvents } });
  }
}

/**
 * The authorization decision for an append: `append` on the stream, at most
 * `maxBatchEvents` events, and `admin` if any event is of an admin-only type.
 * Made before anything is published.
 */
export function authorizeAppend(writer: Writer, path: StreamPath, types: readonly string[]): void {
  writer.require("append", path);
  checkBatchSize(writer, types.length);
  const right = rightNeeded(types);
  if (right !== "append") writer.require(right, path);
}

/**
 * One of the mesh's own services (a processor). NATS permissions, not tokens,
 * decide what a service may publish (deploy/nats/permissions.conf).
 */
export function serviceWriter(name: string): Writer {
  return { name, require: () => undefined, mayRead: () => true, maxBatchEvents: Number.POSITIVE_INFINITY };
}
