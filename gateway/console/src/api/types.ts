/** What the gateway answers, as the console reads it: the envelopes are the contract's own types (docs/EVENTS.md). */
export type { EventEnvelope as StoredEvent, EphemeralEnvelope as EphemeralEvent } from "../../../../shared/contract/envelope.js";
import type { EventEnvelope } from "../../../../shared/contract/envelope.js";

export interface ReadPage {
  events: EventEnvelope[];
  nextOffset: number;
  upToDate: boolean;
}

export interface StreamSummary {
  path: string;
  lastOffset: number;
  eventCount: number;
  paused: boolean;
}

export type Right = "read" | "append" | "admin";

export interface Grant {
  path: string;
  rights: Right[];
}

export interface Me {
  authEnabled: boolean;
  subject: string;
  grants: Grant[];
}

export interface ProcessorConsumer {
  name: string;
  kind: "processor" | "webhook-subscription";
  consumer: string;
  pending: number;
  ackPending: number;
  redelivered: number;
  ackFloor: number;
  delivered: number;
  waitingPulls: number;
  healthy: boolean;
  createdAt: string;
}

export interface StreamState {
  path: string;
  at: number;
  throughOffset: number;
  lastOffset: number;
  eventsFolded: number;
  processors: Record<string, { state: unknown; stream: unknown }>;
}
