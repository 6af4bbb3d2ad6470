import type { EventEnvelope } from "./envelope.js";

/**
 * The JSON bodies of the gateway's read routes, as every client reads them: the gateway builds them, the console
 * and the CLI read them (docs/EVENTS.md, "HTTP API"). Paths are plain strings here: a client never needs the brand.
 */

/** `GET /streams/<path>`: a page of history. */
export interface ReadPageBody {
  events: EventEnvelope[];
  nextOffset: number;
  upToDate: boolean;
}

/** One stream of `GET /streams?prefix=`. */
export interface StreamSummary {
  path: string;
  lastOffset: number;
  eventCount: number;
  /** The last event's `createdAt`. */
  lastEventAt: string | null;
  /** As the gateway's pause index knows it (what appends are refused on). */
  paused: boolean;
}

export interface StreamListBody {
  streams: StreamSummary[];
  /** Pass as `cursor` for the next page; absent on the last page. */
  nextCursor?: string;
}

/** `GET /streams/<path>/state`. */
export interface StreamStateBody {
  path: string;
  /** The offset asked for (the stream's last offset when none was). */
  at: number;
  /** The stream's last event at or before `at`, the last event folded; 0 if there is none. */
  throughOffset: number;
  /** The stream's last offset now. */
  lastOffset: number;
  eventsFolded: number;
  processors: Record<string, { state: unknown; stream: unknown }>;
}

/** One consumer of `GET /processors`. */
export interface ProcessorConsumer {
  /** The processor (`processor-<name>`) or the webhook subscription (`webhook-<hash>`) the consumer serves. */
  name: string;
  kind: "processor" | "webhook-subscription";
  consumer: string;
  /** The stream a webhook subscription's consumer delivers, or the subtree a processor is limited to; null for all. */
  stream: string | null;
  /** Stored events not yet delivered: how far behind the log it is. */
  pending: number;
  /** Delivered, not yet acknowledged. */
  ackPending: number;
  redelivered: number;
  /** Every event up to this offset is acknowledged. */
  ackFloor: number;
  /** The last offset delivered. */
  delivered: number;
  /** Pull requests waiting: replicas asking for work. 0 with events pending means no replica is running. */
  waitingPulls: number;
  /** A replica is pulling or holds messages: the consumer's view of health, not the processes' own probes. */
  healthy: boolean;
  createdAt: string;
}

export interface ProcessorsBody {
  processors: ProcessorConsumer[];
}

/** `POST /processors/<name>/rewind`: where its consumer starts again, an offset or an RFC 3339 time. */
export interface ProcessorRewindRequest {
  to: number | string;
}

/** What a rewind did: the consumer's place before, where it starts now, and how much it has to go through again. */
export interface ProcessorRewoundBody {
  processor: string;
  consumer: string;
  /** The `to` asked for, as given. */
  to: number | string;
  before: {
    /** Every event up to this offset was acknowledged. */
    ackFloor: number;
    /** The last offset delivered. */
    delivered: number;
    pending: number;
    ackPending: number;
  };
  /** The first offset the consumer delivers again (a time resolves to the first event stored at or after it). */
  start: number;
  /** Events from `start` on that the consumer will deliver (in its filter), counted right after the rewind. */
  pending: number;
  /** Times the consumer was deleted and created again: more than 1 when a replica re-created it in between. */
  attempts: number;
}

export type Right = "read" | "append" | "admin";

/** `GET /me`. */
export interface MeBody {
  authEnabled: boolean;
  subject: string;
  grants: { path: string; rights: Right[] }[];
}
