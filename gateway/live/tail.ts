import { DeliverPolicy, type ConsumerMessages } from "@nats-io/jetstream";
import type { Subscription } from "@nats-io/transport-node";
import { decodeBody, toEphemeralEnvelope } from "../../shared/contract/envelope.js";
import type { Logger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import { decodeJsMsg } from "../../shared/log/read.js";
import { pathOfSubject } from "../../shared/contract/subjects.js";
import { batchOf, ephemeralFrame, storedFrame, type SseBatch, type SseFrame } from "./sse-frame.js";

/** How long a tail keeps trying to replace its consumer after a reconnect before it ends its clients. */
const REPLACE_GIVE_UP_MS = 15_000;

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
  private messages: ConsumerMessages | undefined;
  /** The consumer whose messages count: a replaced one's leftovers are ignored. */
  private generation = 0;
  /** The highest stored offset the consumer delivered: where a replacement starts. */
  private lastDelivered = 0;
  /** `lastDelivered` is known: before that, a replacement would not know where to start. */
  private positioned = false;
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
    this.lastDelivered = this.floorOffset;
    this.positioned = true;
    await this.consumeFrom(this.floorOffset + 1, ++this.generation);
    this.ephemeral = this.nats.nc.subscribe(this.liveFilter, {
      callback: (err, msg) => {
        if (err !== null) return;
        const path = pathOfSubject(msg.subject);
        if (path === null) return;
        this.fanOut(ephemeralFrame(toEphemeralEnvelope(path, new Date().toISOString(), decodeBody(msg.data))));
      },
    });
  }

  /**
   * After the NATS connection is re-established. An idle ordered consumer may deliver nothing more until the
   * client's heartbeat check resets it, tens of seconds later; a new consumer from the last delivered offset
   * resumes at once, and subscribers notice nothing. If JetStream does not answer for a while, the tail ends and
   * its clients resume with Last-Event-ID.
   */
  async replaceConsumer(): Promise<void> {
    if (this.stopped || !this.positioned) return;
    const generation = ++this.generation;
    this.messages?.stop();
    const deadline = performance.now() + REPLACE_GIVE_UP_MS;
    for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 2_000)) {
      try {
        await this.consumeFrom(this.lastDelivered + 1, generation);
        return;
      } catch (err) {
        if (!this.isCurrent(generation)) return;
        if (performance.now() > deadline) {
          this.logger.warn({ err, filter: this.filter }, "live tail could not resume after a NATS reconnect");
          this.finish("live tail lost its NATS consumer");
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  private async consumeFrom(startSeq: number, generation: number): Promise<void> {
    const consumer = await this.nats.js.consumers.get(this.nats.streamName, {
      filter_subjects: this.filter,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: startSeq,
    });
    const messages = await consumer.consume({ max_messages: 1000 });
    if (!this.isCurrent(generation)) {
      messages.stop();
      void consumer.delete().catch(() => undefined);
      return;
    }
    this.messages = messages;
    void this.pump(messages, consumer, generation);
  }

  /** Not stopped, and `generation` is the consumer that counts (a method: the state changes between awaits). */
  private isCurrent(generation: number): boolean {
    return !this.stopped && generation === this.generation;
  }

  private async pump(messages: ConsumerMessages, consumer: { delete(): Promise<boolean> }, generation: number): Promise<void> {
    let reason = "live tail stopped";
    try {
      for await (const m of messages) {
        if (generation !== this.generation) break;
        const frame = storedFrame(decodeJsMsg(m));
        this.lastDelivered = frame.offset ?? this.lastDelivered;
        this.remember(frame);
        this.fanOut(frame);
      }
    } catch (err) {
      reason = "live tail lost its NATS consumer";
      if (generation === this.generation) this.logger.warn({ err, filter: this.filter }, reason);
    } finally {
      void consumer.delete().catch(() => undefined);
      // A replaced consumer ends quietly: its successor carries on.
      if (generation === this.generation) this.finish(reason);
    }
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
    this.messages?.stop();
    this.finish("live tail stopped");
  }

  private finish(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.messages?.stop();
    this.ephemeral?.unsubscribe();
    this.flush();
    for (const subscriber of this.subscribers) subscriber.end(reason);
    this.subscribers.clear();
    this.onEnded(this);
  }
}
