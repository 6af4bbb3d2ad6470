import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { Nats } from "../../shared/nats/connection.js";
import { lastOffset, readFew } from "../../shared/log/read.js";
import { eventsSubject, type StreamPath } from "../../shared/contract/subjects.js";
import { initialSystemState, reduceSystemState, type SystemState } from "./system-state.js";

export interface StreamState<S> {
  /** The last offset reduced into `state` and `system`. */
  offset: number;
  system: SystemState;
  state: S;
}

export interface Reducer<S> {
  processor: string;
  initialState(): S;
  reduce(state: S, event: EventEnvelope): S;
}

/**
 * Per-stream state of one processor, derived only from the stream's events
 * and advanced incrementally: each call reads just what was appended since.
 * Least-recently-used streams are dropped past `capacity`; they are rebuilt
 * from the log when needed again.
 */
export class StreamStateCache<S> {
  private readonly entries = new Map<StreamPath, StreamState<S>>();

  constructor(
    private readonly nats: Nats,
    private readonly reducer: Reducer<S>,
    private readonly capacity = 10_000,
  ) {}

  /** The state as of the stream's current last offset. */
  async latest(path: StreamPath): Promise<StreamState<S>> {
    let entry = this.entries.get(path) ?? { offset: 0, system: initialSystemState(), state: this.reducer.initialState() };
    const last = await lastOffset(this.nats, path);
    if (last > entry.offset) {
      // Usually a few events: direct gets, and a consumer only for a long catch-up (a cold start).
      for await (const m of readFew(this.nats, eventsSubject(path), entry.offset + 1, last)) entry = this.apply(entry, m.decode().envelope);
    }
    this.entries.delete(path);
    this.entries.set(path, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    return entry;
  }

  private apply(entry: StreamState<S>, event: EventEnvelope): StreamState<S> {
    return {
      offset: event.offset,
      system: reduceSystemState(entry.system, event, this.reducer.processor),
      state: this.reducer.reduce(entry.state, event),
    };
  }
}
