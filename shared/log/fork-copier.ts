import type { PubAck } from "@nats-io/jetstream";
import { encodeBody, type EventEnvelope, type StoredBody } from "../contract/envelope.js";
import { AgentmeshError } from "../contract/errors.js";
import { PayloadOffsetFields } from "../contract/events/offset-fields.js";
import { eventsSubject, type StreamPath } from "../contract/subjects.js";
import { SystemEventTypes } from "../contract/wire.js";
import { isCompareAndSetConflict, natsFailure, type Nats } from "../nats/connection.js";
import { lastOffset } from "./read.js";
import { resealPayload, type SecretBox } from "./secrets.js";

/** Copies in flight at most: enough to keep the server busy, few enough to stop soon after a failure. */
const MAX_WIDTH = 1024;

/** The event types the gateway's indexes follow (pauses, inbound webhook secrets): the fork tells them of the copies. */
const INDEXED_TYPES = new Set<string>([SystemEventTypes.paused, SystemEventTypes.agentPaused, SystemEventTypes.resumed, SystemEventTypes.inboundConfigured]);

interface InFlight {
  event: EventEnvelope;
  /** The offset the copy was published to land at; 0 when it was published without a guess. */
  predicted: number;
  ack: Promise<PubAck>;
}

export interface CopyTarget {
  from: StreamPath;
  to: StreamPath;
}

/**
 * Copies a stream's events onto a new subject, in order, each one's offsets translated to the copies' (docs/
 * ARCHITECTURE.md, "Forks"). An event names earlier events by offset (its cause, the request it answers), and in an
 * agent's log almost every event names the one just before it: waiting for each copy's ack before translating the
 * next would cost a round trip per event. So the copier guesses: with nothing else stored meanwhile, the copy
 * published after the one guessed at offset n lands at n + 1. Each guess is checked by the server, not trusted:
 * every copy is published on condition that the stream's last offset is the one before its guess
 * (`Nats-Expected-Last-Sequence`) and that the subject's last offset is the previous copy's
 * (`Nats-Expected-Last-Subject-Sequence`), so a copy is stored only where it was guessed, right after its
 * predecessor. When another stream's event came in between, the copy and those after it are refused; the copier
 * learns where the stream is, sends them again with fresh guesses, and guesses less far ahead for a while (down to
 * one at a time, with no guess, under steady traffic from others).
 */
export class ForkCopier {
  /** Copies stored. */
  count = 0;
  /** The offset of the last copy stored. */
  lastStored = 0;
  /** Copies of pauses, resumes and inbound webhook secrets in flight, by source offset, and those stored. */
  private readonly indexedInFlight = new Map<number, EventEnvelope>();
  private readonly indexedStored: EventEnvelope[] = [];
  /** How many times a guess was wrong (another stream's event came in between). */
  mispredictions = 0;

  private readonly subject: string;
  private readonly storedAt = new Map<number, number>();
  private readonly guessedAt = new Map<number, number>();
  private window: InFlight[] = [];
  private width = MAX_WIDTH;
  /** Copies stored as guessed since the last wrong guess: a long run of them widens the window again. */
  private streak = 0;
  private nextGuess = 0;
  /** The subject's last offset once every copy in flight is stored: each copy's condition. */
  private subjectLast = 0;

  constructor(
    private readonly nats: Nats,
    private readonly target: CopyTarget,
    private readonly secrets: SecretBox | null,
  ) {
    this.subject = eventsSubject(target.to);
  }

  /** The stored copies the gateway's indexes follow (pauses, webhook secrets), in order, at their offsets in the fork. */
  get indexed(): readonly EventEnvelope[] {
    return this.indexedStored;
  }

  async copyAll(events: AsyncIterable<EventEnvelope>): Promise<void> {
    try {
      this.nextGuess = (await this.streamLastOffset()) + 1;
      for await (const event of events) await this.add(event);
      while (this.window.length > 0) await this.settleOldest();
    } catch (err) {
      if (err instanceof AgentmeshError) throw err;
      throw natsFailure(err);
    }
  }

  private async add(event: EventEnvelope): Promise<void> {
    this.publish(event);
    // The first copy alone says whether the target was free; after it, the window bounds what is in flight.
    if (this.count === 0 || this.window.length >= this.width) await this.settleOldest();
  }

  private publish(event: EventEnvelope): void {
    const guessing = this.width > 1;
    const predicted = guessing ? this.nextGuess : 0;
    const body = this.copyOf(event);
    const ack = this.nats.publisher.publish(this.subject, encodeBody(body), {
      expectLastSubjectSequence: this.subjectLast,
      ...(guessing ? { expectLastSequence: predicted - 1 } : {}),
    });
    // Rejections are taken in order by settleOldest; this keeps one in the window from going unobserved meanwhile.
    ack.catch(() => undefined);
    if (guessing) {
      this.guessedAt.set(event.offset, predicted);
      this.subjectLast = predicted;
      this.nextGuess = predicted + 1;
    }
    this.window.push({ event, predicted, ack });
    if (INDEXED_TYPES.has(event.type)) this.indexedInFlight.set(event.offset, { ...event, streamPath: this.target.to, payload: body.payload });
  }

  private async settleOldest(): Promise<void> {
    const oldest = this.window.shift() as InFlight;
    let ack: PubAck;
    try {
      ack = await oldest.ack;
    } catch (err) {
      if (!isCompareAndSetConflict(err)) throw err;
      await this.guessAgain(oldest);
      return;
    }
    if (oldest.predicted !== 0 && ack.seq !== oldest.predicted) throw new AgentmeshError("INTERNAL", `A copy guessed at offset ${oldest.predicted} was stored at ${ack.seq}: the server did not check the guess`);
    this.storedAt.set(oldest.event.offset, ack.seq);
    this.guessedAt.delete(oldest.event.offset);
    this.count += 1;
    this.lastStored = ack.seq;
    const indexed = this.indexedInFlight.get(oldest.event.offset);
    if (indexed !== undefined) {
      this.indexedInFlight.delete(oldest.event.offset);
      this.indexedStored.push({ ...indexed, offset: ack.seq });
    }
    if (oldest.predicted === 0) {
      // Stored without a guess: the next copy is conditioned on it.
      this.subjectLast = ack.seq;
      this.nextGuess = ack.seq + 1;
    }
    this.streak += 1;
    if (this.streak >= 2 * this.width && this.width < MAX_WIDTH) {
      this.width *= 2;
      this.streak = 0;
    }
  }

  /**
   * A copy was refused: another stream's event took its offset, or another writer appended to the target. Every copy
   * in flight after it is refused too (each is conditioned on its predecessor on the subject). Find where the target
   * stands, then send them all again.
   */
  private async guessAgain(refused: InFlight): Promise<void> {
    const resend = [refused, ...this.window];
    this.window = [];
    const outcomes = await Promise.allSettled(resend.slice(1).map((copy) => copy.ack));
    const targetLast = await lastOffset(this.nats, this.target.to);
    if (outcomes.some((o) => o.status === "fulfilled") || targetLast !== this.lastStored) {
      if (this.count === 0) throw new AgentmeshError("STREAM_EXISTS", `A stream exists at ${this.target.to}; a fork makes a new one`);
      throw new AgentmeshError("FORK_INTERRUPTED", `Another writer appended to ${this.target.to} while the fork was being copied, so its history is not the source's; fork again to a new path`);
    }
    this.mispredictions += 1;
    for (const copy of resend) {
      this.guessedAt.delete(copy.event.offset);
      this.indexedInFlight.delete(copy.event.offset);
    }
    this.subjectLast = this.lastStored;
    this.width = Math.max(1, Math.floor(this.width / 4));
    this.streak = 0;
    this.nextGuess = (await this.streamLastOffset()) + 1;
    for (const copy of resend) await this.add(copy.event);
  }

  private async streamLastOffset(): Promise<number> {
    return (await this.nats.jsm.streams.info(this.nats.streamName)).state.last_seq;
  }

  /** The event as the fork stores it: the same, but for the offsets it names, its sealed credentials, and `forkedFrom`. */
  private copyOf(event: EventEnvelope): StoredBody {
    const { from, to } = this.target;
    const translate = (offset: number): number => this.storedAt.get(offset) ?? this.guessedAt.get(offset) ?? offset;
    let payload = resealPayload(this.secrets, from, to, event.type, event.payload);
    const fields = PayloadOffsetFields[event.type];
    if (fields !== undefined && isRecord(payload)) {
      const translated: Record<string, unknown> = { ...payload };
      for (const field of fields) {
        const value = translated[field];
        if (typeof value === "number") translated[field] = translate(value);
      }
      payload = translated;
    }
    const body: StoredBody = { type: event.type, payload };
    if (event.metadata !== undefined) body.metadata = event.metadata;
    if (event.idempotencyKey !== undefined) body.idempotencyKey = event.idempotencyKey;
    if (event.source !== undefined) body.source = { processor: event.source.processor, causationOffset: translate(event.source.causationOffset) };
    body.createdAt = event.createdAt;
    body.forkedFrom = { path: from, offset: event.offset };
    return body;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
