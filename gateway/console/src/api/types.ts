/** What the gateway answers, as the console reads it: the contract's own types (docs/EVENTS.md). */
export type { EventEnvelope as StoredEvent, EphemeralEnvelope as EphemeralEvent } from "../../../../shared/contract/envelope.js";
export type { MeBody as Me, ProcessorConsumer, ReadPageBody as ReadPage, Right, StreamStateBody as StreamState, StreamSummary, StreamListBody } from "../../../../shared/contract/http-bodies.js";
