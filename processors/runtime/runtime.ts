import { setTimeout as sleep } from "node:timers/promises";
import { AckPolicy, DeliverPolicy, JetStreamApiError, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import { typeMatcher } from "../../shared/contract/type-glob.js";
import { appendEvents } from "../../shared/log/append.js";
import type { EventEnvelope, EventInput, ValidEventInput } from "../../shared/contract/envelope.js";
import { EventInputSchema } from "../../shared/contract/envelope.js";
import { AgentmeshError, ensureError } from "../../shared/contract/errors.js";
import type { Logger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import { RetryableError, TerminalError } from "./errors.js";
import { processorEvents, processorSeconds } from "../../shared/service/metrics.js";
import { decodeJsMsg } from "../../shared/log/read.js";
import { StreamStateCache, type StreamState } from "./stream-state-cache.js";
import { eventsSubject, type StreamPath } from "../../shared/contract/subjects.js";
import { ConsumerNames, MetadataKeys, SubjectRoots, SystemEventTypes } from "../../shared/contract/wire.js";
import { serviceWriter, type Writer } from "../../shared/log/writer.js";
import { withTraceContext } from "./trace-context.js";

/** What a processor sees when an event it triggers on arrives. */
export interface ReactionContext<S> {
  event: EventEnvelope;
  /**
   * The stream's state as of its latest offset when the decision was made (at least `event.offset`); for a
   * processor that decides on cached states (`decideOnCachedState`), possibly an offset a little before the latest.
   */
  stream: StreamState<S>;
  log: Logger;
}

/**
 * A processor is its domain logic: a pure `reduce` that rebuilds its state
 * from a stream's events, and `react`, which decides what to append when a
 * triggering event arrives. The runtime does everything else.
 */
export interface Processor<S> {
  name: string;
  /** Event types (glob patterns, `*` within a segment, `**` anything) that call `react`. */
  triggers: readonly string[];
  /** Subject filter of the durable consumer; default every stream. */
  filterSubject?: string;
  initialState(): S;
  reduce(state: S, event: EventEnvelope): S;
  react(context: ReactionContext<S>): Promise<EventInput[]> | EventInput[];
  /**
   * Condition each append on the stream's last offset the decision was made at,
   * and decide again on conflict (default). Turn off only for reactions whose
   * idempotency keys are deterministic across replicas (the breaker's).
   */
  serialiseDecisions?: boolean | ((event: EventEnvelope) => boolean);
  /**
   * Decide on the cached state when it is already at or past the event, instead of reading the stream to its end
   * first: a processor that reacts to every event reads each stream once per burst instead of once per event. Only
   * for decisions that are not serialised and whose reaction repeats harmlessly (the breaker's pause is keyed by
   * the offset that tripped it); never on a redelivery, nor when the pause index knows of a pause or resume after
   * the cached state.
   */
  decideOnCachedState?: boolean;
  /**
   * Whether an event handled while its stream is paused is skipped (default: the pause rule of docs/EVENTS.md, for
   * processors whose reactions steer the stream). A processor that keeps an index of the log (schedules,
   * subscriptions) turns it off: an entry missed because a pause came between the event and its handling would be
   * missed for good. What it appends is still refused while the stream is paused.
   */
  skipWhilePaused?: boolean;
  /**
   * Where a new durable consumer starts: `new` events only (default: history is
   * never reacted to), or `all` for processors that index the log and append
   * nothing that depends on time (the scheduler, the webhook pusher).
   */
  startFrom?: "new" | "all";
}

export interface RuntimeOptions {
  nats: Nats;
  logger: Logger;
  indexes: StreamIndexes;
  /** Deliveries of one event before it is given up on (recorded as stream/error-occurred). */
  maxDeliver?: number;
  ackWaitMs?: number;
  /** Events handled at once across streams; events of one stream are always handled one at a time. */
  concurrency?: number;
}

const MAX_DECISION_ATTEMPTS = 8;
/** How long a decision keeps trying, with growing pauses after MAX_DECISION_ATTEMPTS, before it is nak'd. */
const HOLD_IN_LANE_MS = 20_000;
/** The longest single wait for a replica behind the event to catch up (20, 40, ... ms: ~1.3 s in all). */
const BEHIND_WAIT_MAX_MS = 640;
/** How long a decision waits for the rest of another decision's batch before taking the stream as it is. */
const UNFINISHED_BATCH_MS = 2_000;
const EVENTS_PREFIX = `${SubjectRoots.events}.`;
/** Every processor consumer's filter until they went unfiltered (see `start`). */
const LEGACY_FILTER = `${SubjectRoots.events}.>`;

function backoffMs(deliveryCount: number): number {
  return Math.min(30_000, 250 * 2 ** Math.max(0, deliveryCount - 1));
}

/**
 * Runs a processor: one durable pull consumer per processor name, shared by
 * all its replicas; events of one stream handled in order, one at a time, per
 * replica; decisions serialised across replicas by the expected last offset.
 */
export class ProcessorRuntime<S> {
  private readonly cache: StreamStateCache<S>;
  private readonly triggers: (type: string) => boolean;
  private readonly lanes = new Map<StreamPath, Promise<void>>();
  private messages: ConsumerMessages | undefined;
  private inFlight = 0;
  private running = false;
  private readonly maxDeliver: number;
  private readonly ackWaitMs: number;
  private readonly writer: Writer;

  constructor(
    private readonly processor: Processor<S>,
    private readonly options: RuntimeOptions,
  ) {
    this.cache = new StreamStateCache(options.nats, { processor: processor.name, initialState: () => processor.initialState(), reduce: (s, e) => processor.reduce(s, e) });
    this.triggers = typeMatcher(processor.triggers);
    this.maxDeliver = options.maxDeliver ?? 10;
    this.ackWaitMs = options.ackWaitMs ?? 30_000;
    this.writer = serviceWriter(processor.name);
  }

  /** Events waiting in the durable consumer, for the lag gauge; null before start. */
  private lagProbe: (() => Promise<number>) | null = null;

  async lag(): Promise<number | null> {
    return this.lagProbe === null ? null : this.lagProbe().catch(() => null);
  }

  get consumerName(): string {
    return ConsumerNames.processor(this.processor.name);
  }

  isRunning(): boolean {
    return this.running && this.options.nats.isConnected();
  }

  /** Create the durable consumer if needed (it starts at new events: history is reduced, never reacted to). */
  async start(): Promise<void> {
    const { nats } = this.options;
    const config = {
      durable_name: this.consumerName,
      ack_policy: AckPolicy.Explicit,
      // No filter by default: the stream's other subjects (the Durable Streams face's data) are skipped here, which
      // costs less than the server's filtered delivery (nats-server 2.9.10 delivers a backlog 2-6x slower through a
      // wildcard filter: docs/benchmarks.md, "Processors beside the log").
      ...(this.processor.filterSubject === undefined ? {} : { filter_subject: this.processor.filterSubject }),
      max_deliver: this.maxDeliver,
      ack_wait: this.ackWaitMs * 1_000_000,
      max_ack_pending: 1000,
    };
    try {
      const existing = await nats.jsm.consumers.info(nats.streamName, this.consumerName);
      const limits = { max_deliver: config.max_deliver, ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending };
      const legacy = this.processor.filterSubject === undefined && existing.config.filter_subject === LEGACY_FILTER;
      // Made before consumers went unfiltered: an update whose filter is left out removes it, keeping the
      // consumer's place in the log (nats-server 2.9 and 2.10 both accept it as an update).
      await nats.jsm.consumers.update(nats.streamName, this.consumerName, legacy ? { ...limits, filter_subject: undefined } : limits);
      if (legacy) this.options.logger.info({ consumer: this.consumerName }, `consumer filter ${LEGACY_FILTER} removed`);
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.status !== 404) throw err;
      const deliverPolicy = this.processor.startFrom === "all" ? DeliverPolicy.All : DeliverPolicy.New;
      await nats.jsm.consumers.add(nats.streamName, { ...config, deliver_policy: deliverPolicy }).catch(async (addErr: unknown) => {
        // Another replica created it first.
        await nats.jsm.consumers.info(nats.streamName, this.consumerName).catch(() => {
          throw addErr;
        });
      });
    }
    const consumer = await nats.js.consumers.get(nats.streamName, this.consumerName);
    // A rewind deletes the consumer and creates it again (docs/ARCHITECTURE.md, "Rewinding a processor"): the client
    // pulls from the new one once two heartbeats are missed, so they come every 2 s rather than every 15 s.
    this.messages = await consumer.consume({ max_messages: Math.max(10, this.options.concurrency ?? 64), idle_heartbeat: 2_000 });
    this.lagProbe = async () => (await nats.jsm.consumers.info(nats.streamName, this.consumerName)).num_pending;
    this.running = true;
    void this.loop(this.messages);
  }

  private async loop(messages: ConsumerMessages): Promise<void> {
    for await (const m of messages) {
      if (!m.subject.startsWith(EVENTS_PREFIX)) {
        m.ack();
        continue;
      }
      const decoded = decodeJsMsg(m);
      const event = decoded.envelope;
      this.repairIndexes(event);
      // A fork's inherited history happened in its source: reduced into the state, never reacted to again
      // (docs/ARCHITECTURE.md, "Forks"). What it left open is taken up on the fork's stream/forked.
      if (!this.triggers(event.type) || event.forkedFrom !== undefined) {
        m.ack();
        continue;
      }
      const path = event.streamPath as StreamPath;
      const previous = this.lanes.get(path) ?? Promise.resolve();
      this.inFlight += 1;
      const lane = previous.then(() => this.handle(m, event)).finally(() => {
        this.inFlight -= 1;
        if (this.lanes.get(path) === lane) this.lanes.delete(path);
      });
      this.lanes.set(path, lane);
    }
    this.running = false;
  }

  /**
   * Indexes converge from the log: a pause, resume or inbound configuration that its writer stored but never recorded
   * (it died in between) is recorded by every processor that reads it, whatever it triggers on.
   */
  private repairIndexes(event: EventEnvelope): void {
    const path = event.streamPath as StreamPath;
    if (!this.options.indexes.isBehind(path, event)) return;
    this.options.logger.warn({ stream: path, offset: event.offset, type: event.type }, "recording in its index a fact its writer did not");
    this.options.indexes.observe(path, [event]).catch((err: unknown) => {
      this.options.logger.error({ err, stream: path, offset: event.offset }, "could not record a fact read from the log in its index");
    });
  }

  private async handle(m: JsMsg, event: EventEnvelope): Promise<void> {
    const endTimer = processorSeconds.startTimer({ processor: this.processor.name });
    // Made on first use: most events of a backlog log nothing, and a child logger serialises its bindings at once.
    let child: Logger | undefined;
    const log = (): Logger => (child ??= this.options.logger.child({ processor: this.processor.name, stream: event.streamPath, offset: event.offset, type: event.type }));
    // Long reactions (a model call) keep the message from being redelivered meanwhile.
    const keepAlive = setInterval(() => {
      m.working();
    }, Math.max(1_000, this.ackWaitMs / 2));
    try {
      const outcome = await this.decideAndAppend(event, m, log);
      m.ack();
      processorEvents.inc({ processor: this.processor.name, outcome });
    } catch (err) {
      processorEvents.inc({ processor: this.processor.name, outcome: "failed" });
      await this.fail(m, event, ensureError(err), log());
    } finally {
      clearInterval(keepAlive);
      endTimer();
    }
  }

  private async decideAndAppend(event: EventEnvelope, m: JsMsg, log: () => Logger): Promise<"reacted" | "no-reaction" | "skipped"> {
    const path = event.streamPath as StreamPath;
    const setting = this.processor.serialiseDecisions ?? true;
    const serialise = typeof setting === "function" ? setting(event) : setting;
    // Not on a redelivery: whether this processor already reacted must be read from the log.
    const cachedOk = this.processor.decideOnCachedState === true && !serialise && !m.info.redelivered;
    const holdUntil = Date.now() + HOLD_IN_LANE_MS;
    for (let attempt = 1; ; attempt++) {
      let stream = (attempt === 1 && cachedOk ? this.usableCachedState(path, event.offset) : undefined) ?? (await this.cache.latest(path));
      if (stream.offset < event.offset) stream = await this.caughtUpTo(event, m.subject, stream);
      if (serialise) stream = await this.pastUnfinishedBatch(path, stream);
      // The log (read to its latest offset) is the truth; the pause index may lag it by a moment.
      if (this.processor.skipWhilePaused !== false && (stream.system.paused !== null || this.pausedAfter(path, stream.offset))) {
        log().debug("stream paused; not reacting");
        return "skipped";
      }
      if (stream.system.reactedTo.includes(event.offset)) {
        log().debug("already reacted to this event (redelivery)");
        return "skipped";
      }
      const reactions = (await this.processor.react({ event, stream, get log() { return log(); } })).map((input, index, all) => this.prepare(input, event, index, all.length));
      if (reactions.length === 0) return "no-reaction";
      try {
        await appendEvents(this.options.nats, path, reactions, { writer: this.writer, indexes: this.options.indexes, unpausedThrough: stream.offset, ...(serialise ? { expectOffset: stream.offset, condition: "first" } : {}) });
        log().info({ reactions: reactions.map((r) => r.type) }, "reacted");
        return "reacted";
      } catch (err) {
        if (err instanceof AgentmeshError && err.code === "STREAM_PAUSED") return "skipped";
        if (!(err instanceof AgentmeshError && err.code === "OFFSET_CONFLICT")) throw err;
        log().debug({ attempt }, "stream moved while deciding; deciding again");
      }
      if (attempt >= MAX_DECISION_ATTEMPTS) {
        // Still in the stream's lane, so the events behind this one wait and reactions stay in order (a nak would
        // let them pass it); past the hold, the event goes back to JetStream after all.
        if (Date.now() > holdUntil) throw new RetryableError("the stream kept moving while deciding", 100);
        await sleep(Math.min(1_000, 20 * 2 ** (attempt - MAX_DECISION_ATTEMPTS)));
      }
    }
  }

  /**
   * The state once it includes the event. A replica that is behind (direct gets may be answered by any replica)
   * has not stored it yet: read again shortly, without spending one of the event's deliveries. A foreign writer's
   * subject that no path maps back to has no state beyond offset 0 to wait for: decided on as it is.
   */
  private async caughtUpTo(event: EventEnvelope, subject: string, behind: StreamState<S>): Promise<StreamState<S>> {
    const path = event.streamPath as StreamPath;
    if (eventsSubject(path) !== subject) return behind;
    let stream = behind;
    for (let waitMs = 20; stream.offset < event.offset && waitMs <= BEHIND_WAIT_MAX_MS; waitMs *= 2) {
      await sleep(waitMs);
      stream = await this.cache.latest(path);
    }
    if (stream.offset < event.offset) throw new RetryableError("the stream's state is still behind the event; reading again later", 1_000);
    return stream;
  }

  /**
   * The state once no decision is half stored at its end. A decision's reactions after its first are published
   * without a condition (so that a writer in between cannot cut it short), which leaves a moment in which the stream
   * ends in the middle of one; a decision made then could not see the rest (two requests started for one input).
   * Its parts come within milliseconds; one whose rest never came (its writer died) is taken as it is after a while.
   */
  private async pastUnfinishedBatch(path: StreamPath, current: StreamState<S>): Promise<StreamState<S>> {
    let stream = current;
    for (let waitMs = 5; stream.system.unfinishedBatchAt !== null && Date.now() - Date.parse(stream.system.unfinishedBatchAt) < UNFINISHED_BATCH_MS; waitMs = Math.min(waitMs * 2, 200)) {
      await sleep(waitMs);
      stream = await this.cache.latest(path);
    }
    return stream;
  }

  /** The cached state, if it is at or past `offset` and no pause or resume the index knows of came after it. */
  private usableCachedState(path: StreamPath, offset: number): StreamState<S> | undefined {
    const cached = this.cache.cached(path);
    if (cached === undefined || cached.offset < offset) return undefined;
    const pause = this.options.indexes.pauseStatus(path);
    return pause !== undefined && pause.offset > cached.offset ? undefined : cached;
  }

  /**
   * The pause index knows of a pause after the state's offset (a cached state, or one read a moment ago): the
   * append would be refused, so the decision is not worth making.
   */
  private pausedAfter(path: StreamPath, offset: number): boolean {
    const pause = this.options.indexes.pauseStatus(path);
    return pause?.paused === true && pause.offset > offset;
  }

  /** Mark a reaction with its cause and a key that makes a redelivery store it only once. */
  private prepare(input: EventInput, cause: EventEnvelope, index: number, of: number): ValidEventInput {
    const valid = EventInputSchema.parse(input);
    return withTraceContext({
      ...valid,
      // A decision of several events is stored one event at a time: its parts say how far it has got.
      ...(of > 1 ? { metadata: { ...valid.metadata, [MetadataKeys.batch]: { index, of } } } : {}),
      source: { processor: this.processor.name, causationOffset: cause.offset },
      idempotencyKey: valid.idempotencyKey ?? `${this.processor.name}:${cause.offset}:${index}`,
    }, cause, this.processor.name);
  }

  private async fail(m: JsMsg, event: EventEnvelope, error: Error, log: Logger): Promise<void> {
    const lastDelivery = m.info.deliveryCount >= this.maxDeliver;
    if (error instanceof RetryableError && !lastDelivery) {
      log.warn({ err: error, delayMs: error.delayMs }, "retrying event later");
      m.nak(error.delayMs);
      return;
    }
    if (!(error instanceof TerminalError) && !lastDelivery) {
      const delay = backoffMs(m.info.deliveryCount);
      log.warn({ err: error, delivery: m.info.deliveryCount, delayMs: delay }, "event failed; will retry");
      m.nak(delay);
      return;
    }
    log.error({ err: error }, "giving up on event");
    try {
      await appendEvents(this.options.nats, event.streamPath as StreamPath, [
        {
          type: SystemEventTypes.errorOccurred,
          payload: { processor: this.processor.name, message: error.message, offset: event.offset },
          source: { processor: this.processor.name, causationOffset: event.offset },
          idempotencyKey: `${this.processor.name}:${event.offset}:error`,
        },
      ], { writer: this.writer });
      // No reason: nats-server 2.9 does not recognise a termination that carries one (2.10 does), and leaves the
      // message unacknowledged until its ack wait. The reason is in the stream/error-occurred just stored.
      m.term();
    } catch (recordErr) {
      // Could not record it: let JetStream redeliver rather than lose the failure silently.
      log.error({ err: recordErr }, "could not record the failure; leaving the event for redelivery");
      m.nak(backoffMs(m.info.deliveryCount));
    }
  }

  /** Stop taking events, let the ones in hand finish (bounded), then return. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.messages?.stop();
    this.running = false;
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
