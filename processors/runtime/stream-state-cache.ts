import type { EventEnvelope } from "../../shared/contract/envelope.js";
import type { Nats } from "../../shared/nats/connection.js";
import { eachFewEvents, lastOffset, nextMessage } from "../../shared/log/read.js";
import { eventsSubject, type StreamPath } from "../../shared/contract/subjects.js";
import { initialSystemState, reduceSystemState, type SystemState } from "../../shared/state/system-state.js";

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

  /** The state as last brought up to date, without reading anything; undefined if the stream is not cached. */
  cached(path: StreamPath): StreamState<S> | undefined {
    const entry = this.entries.get(path);
    if (entry !== undefined) this.touch(path, entry);
    return entry;
  }

  /** The state as of the stream's current last offset. */
  async latest(path: StreamPath): Promise<StreamState<S>> {
    let entry = this.entries.get(path) ?? { offset: 0, system: initialSystemState(), state: this.reducer.initialState() };
    const subject = eventsSubject(path);
    // The stream's last offset and the first event after the cached state, asked together: one round trip when
    // one event was appended since (a processor's usual case), instead of one for each.
    const [last, next] = await Promise.all([lastOffset(this.nats, path), nextMessage(this.nats, subject, entry.offset + 1)]);
    if (next !== null && next.seq <= last) {
      entry = this.apply(entry, next.decode().envelope);
      // Usually nothing more: direct gets, and a consumer only for a long catch-up (a cold start).
      if (last > entry.offset) await eachFewEvents(this.nats, subject, entry.offset + 1, last, (decoded) => { entry = this.apply(entry, decoded.envelope); });
    }
    this.touch(path, entry);
    return entry;
  }

  private touch(path: StreamPath, entry: StreamState<S>): void {
    this.entries.delete(path);
    this.entries.set(path, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  private apply(entry: StreamState<S>, event: EventEnvelope): StreamState<S> {
    return {
      offset: event.offset,
      system: reduceSystemState(entry.system, event, this.reducer.processor),
      state: this.reducer.reduce(entry.state, event),
    };
  }
}
