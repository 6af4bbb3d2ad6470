import type { Subscription } from "@nats-io/transport-node";
import { decodeBody, toEphemeralEnvelope } from "../../shared/contract/envelope.js";
import type { Logger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import { followLasting, type LastingConsumer } from "../../shared/nats/lasting-consumer.js";
import { decodeJsMsg } from "../../shared/log/read.js";
import { pathOfSubject } from "../../shared/contract/subjects.js";
import { batchOf, ephemeralFrame, storedFrame, type SseBatch, type SseFrame } from "./sse-frame.js";

/** Messages pulled at once: a busy subtree's tail fans out large batches. */
const TAIL_PULL_MESSAGES = 1000;

export interface TailSubscriber {
  /** One remembered frame, replayed when the subscriber joins. */
  deliver(frame: SseFrame): void;
  /** The live frames of one event-loop turn, in offset order for stored events; may repeat frames the subscriber already has (compare offsets). */
  deliverBatch(batch: SseBatch): void;
  /** The tail stopped (NATS trouble or shutdown); the client should reconnect and resume. */
  end(reason: string): void;
}

/**
 * One live view of a stream or subtree, shared by every SSE client on it: one
 * ordered JetStream consumer and one core subscription for ephemeral events,
 * however many clients there are.
 *
 * Invariant: every matching event with offset <= `floor` can be read from
 * JetStream; every one above it is in `recent` (in order) or will be delivered
 * to subscribers. A client therefore resumes from any offset with no gap and no
 * duplicate: read JetStream up to `floor`, then `recent`, then live.
 */
export class Tail {
  private readonly recent: SseFrame[] = [];
  private recentStart = 0;
  private floorOffset = 0;
  private readonly subscribers = new Set<TailSubscriber>();
  /** Frames received this turn, not yet fanned out. */
  private pending: SseFrame[] = [];
  /** The last stored offset fanned out: replay stops here, and the pending batch brings the rest. */
  private fannedOutThrough = 0;
  /** The tail's consumer, started again after the last event it delivered whenever it may have stopped. */
  private following: LastingConsumer | undefined;
  private ephemeral: Subscription | undefined;
  private stopped = false;

  constructor(
    private readonly nats: Nats,
    readonly filter: string,
    private readonly liveFilter: string,
    private readonly capacity: number,
    private readonly logger: Logger,
    private readonly onEnded: (tail: Tail) => void,
  ) {}

  /** Offset at or below which JetStream (not memory) must serve a resuming client. */
  get floor(): number {
    return this.floorOffset;
  }

  /**
   * Where a joining client may switch from JetStream to memory when memory from there on is at most
   * `budgetChars` of frames (at least the floor). A replay is written in one synchronous step, unlike a
   * JetStream read, which waits for the socket: a client far behind reads JetStream closer to the tail first,
   * so that the replay does not overflow its socket buffer (and get it cut off at every resume).
   */
  replayFrom(budgetChars: number): number {
    let chars = 0;
    for (let i = this.recent.length - 1; i >= this.recentStart; i--) {
      const frame = this.recent[i] as SseFrame;
      const offset = frame.offset ?? 0;
      if (offset > this.fannedOutThrough) continue;
      chars += frame.text.length;
      if (chars > budgetChars) return offset;
    }
    return this.floorOffset;
  }

  async start(): Promise<void> {
    const info = await this.nats.jsm.streams.info(this.nats.streamName);
    this.floorOffset = info.state.last_seq;
    this.fannedOutThrough = this.floorOffset;
    // One component keeps it going across reconnects, a crashed server and the loss of the server hosting it
    // (shared/nats/lasting-consumer.ts): subscribers notice nothing but the pause.
    this.following = followLasting(this.nats, {
      stream: this.nats.streamName,
      filter: this.filter,
      start: { sequence: this.floorOffset + 1 },
      pullMessages: TAIL_PULL_MESSAGES,
      onMessage: (m) => {
        if (this.stopped) return;
        const frame = storedFrame(decodeJsMsg(m));
        this.remember(frame);
        this.fanOut(frame);
      },
      logger: this.logger,
      what: `live tail ${this.filter}`,
    });
    this.ephemeral = this.nats.nc.subscribe(this.liveFilter, {
      callback: (err, msg) => {
        if (err !== null) return;
        const path = pathOfSubject(msg.subject);
        if (path === null) return;
        this.fanOut(ephemeralFrame(toEphemeralEnvelope(path, new Date().toISOString(), decodeBody(msg.data))));
      },
    });
  }

  private remember(frame: SseFrame): void {
    this.recent.push(frame);
    if (this.recent.length - this.recentStart > this.capacity) {
      const evicted = this.recent[this.recentStart] as SseFrame;
      this.floorOffset = evicted.offset ?? this.floorOffset;
      this.recentStart += 1;
      // Compact now and then instead of shifting on every event.
      if (this.recentStart >= this.capacity) {
        this.recent.splice(0, this.recentStart);
        this.recentStart = 0;
      }
    }
  }

  private fanOut(frame: SseFrame): void {
    this.pending.push(frame);
    if (this.pending.length === 1) {
      setImmediate(() => {
        this.flush();
      });
    }
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const batch = batchOf(this.pending);
    this.pending = [];
    this.fannedOutThrough = batch.lastOffset ?? this.fannedOutThrough;
    for (const subscriber of this.subscribers) subscriber.deliverBatch(batch);
  }

  /**
   * Deliver what memory holds after `after`, then subscribe, in one synchronous
   * step so nothing can slip in between. Only valid when `after >= floor`.
   */
  replayAndSubscribe(after: number, subscriber: TailSubscriber): void {
    if (after < this.floorOffset) throw new Error(`replay from ${after} is below the tail's floor ${this.floorOffset}`);
    if (this.stopped) {
      // It stopped while the client was catching up: end the client too, so it reconnects and resumes.
      subscriber.end("live tail stopped");
      return;
    }
    for (let i = this.recentStart; i < this.recent.length; i++) {
      const frame = this.recent[i] as SseFrame;
      const offset = frame.offset ?? 0;
      if (offset > this.fannedOutThrough) break;
      if (offset > after) subscriber.deliver(frame);
    }
    this.subscribers.add(subscriber);
  }

  unsubscribe(subscriber: TailSubscriber): void {
    this.subscribers.delete(subscriber);
  }

  stop(): void {
    this.finish("live tail stopped");
  }

  private finish(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.following?.stop();
    this.ephemeral?.unsubscribe();
    this.flush();
    for (const subscriber of this.subscribers) subscriber.end(reason);
    this.subscribers.clear();
    this.onEnded(this);
  }
}
