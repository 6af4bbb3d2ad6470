import { JetStreamApiError, type PubAck } from "@nats-io/jetstream";
import { encodeBody, type EventEnvelope, type StoredBody } from "../contract/envelope.js";
import { AgentmeshError } from "../contract/errors.js";
import { PayloadOffsetFields } from "../contract/events/offset-fields.js";
import { eventsSubject, type StreamPath } from "../contract/subjects.js";
import { JetStreamErrorCodes, SystemEventTypes } from "../contract/wire.js";
import { natsFailure, type Nats } from "../nats/connection.js";
import { appendEvents } from "./append.js";
import { getEvent, lastOffset, readRange } from "./read.js";
import { resealPayload, type SecretBox } from "./secrets.js";
import type { StreamIndexes } from "./stream-indexes.js";
import { serviceWriter } from "./writer.js";

export interface ForkRequest {
  from: StreamPath;
  /** The offset in `from` of the last event the fork inherits. */
  at: number;
  to: StreamPath;
  /** Whether the source's webhook subscriptions deliver the fork's events too. */
  subscriptions: boolean;
}

export interface ForkResult {
  /** The fork's `stream/forked` event, after its inherited history. */
  forked: EventEnvelope;
  /** How many events the fork inherited. */
  events: number;
}

/** Copies in flight at once: enough to keep the server busy, few enough to stop soon after a failure. */
const WINDOW = 1024;

/** The event types the gateway's indexes follow (pauses, inbound webhook secrets): told of the copies too. */
const INDEXED_TYPES = new Set<string>([SystemEventTypes.paused, SystemEventTypes.agentPaused, SystemEventTypes.resumed, SystemEventTypes.inboundConfigured]);

/**
 * Fork a stream (docs/ARCHITECTURE.md, "Forks"): copy its events up to and including `at` to a new stream, each
 * marked `forkedFrom` and with the offsets it refers to (`source.causationOffset`, PayloadOffsetFields) translated
 * to the copies', then append `stream/forked`. The fork is an ordinary subject, so a processor in any language reads
 * it as it reads any stream; processors reduce inherited events and never react to them, and take up what was left
 * open when `stream/forked` arrives.
 *
 * The copies are published pipelined, the first with an expected last offset of 0, so the target cannot exist. A
 * writer that appends to the target while it is copied would interleave with the history: that is checked before
 * `stream/forked` is appended, and such a fork is refused (FORK_INTERRUPTED) and left without it.
 */
export async function forkStream(nats: Nats, request: ForkRequest, deps: { secrets: SecretBox | null; indexes: StreamIndexes }): Promise<ForkResult> {
  const { from, at, to } = request;
  if (from === to) throw new AgentmeshError("STREAM_EXISTS", `A stream cannot be forked onto itself (${to})`);
  const last = await getEvent(nats, at);
  if (last?.streamPath !== from) throw new AgentmeshError("OFFSET_NOT_IN_STREAM", `No event of ${from} is at offset ${at}`, { details: { at } });
  if ((await lastOffset(nats, to)) > 0) throw new AgentmeshError("STREAM_EXISTS", `A stream exists at ${to}; a fork makes a new one`);

  const subject = eventsSubject(to);
  const copies = new Copies(request, deps.secrets);
  const inFlight: Promise<PubAck>[] = [];
  let lastAck: PubAck | undefined;
  try {
    for await (const { envelope: event } of readRange(nats, eventsSubject(from), 1, at)) {
      // Most events name an offset already acknowledged; one in the window waits for its copy's ack.
      const pending = copies.pendingReferences(event);
      if (pending.length > 0) await Promise.all(pending);
      const index = copies.count;
      const copy = copies.copyOf(event);
      // No message ids: nothing is retried (a failed fork stops), and the first copy's condition already keeps a
      // second fork of the same target out; 100,000 ids would only load the server's duplicate window.
      const ack = nats.publisher.publish(subject, encodeBody(copy), index === 0 ? { expectLastSubjectSequence: 0 } : {});
      copies.published(event, copy, ack);
      inFlight.push(ack);
      // The first copy decides whether the target was free; the window bounds the rest.
      if (index === 0 || inFlight.length >= WINDOW) lastAck = await settleOldest(inFlight, to);
    }
    while (inFlight.length > 0) lastAck = await settleOldest(inFlight, to);
  } catch (err) {
    if (err instanceof AgentmeshError) throw err;
    throw natsFailure(err);
  }
  if (lastAck === undefined) throw new AgentmeshError("OFFSET_NOT_IN_STREAM", `No event of ${from} is at offset ${at}`, { details: { at } });
  const copied = copies.count;

  await requireOnlyCopies(nats, to, copied);
  if (copies.indexed.length > 0) await deps.indexes.observe(to, copies.indexed);
  // Conditioned on the last copy: nothing may come between the history and the fork's first word.
  const marker = { type: SystemEventTypes.forked, payload: { from, at, events: copied, subscriptions: request.subscriptions } };
  const result = await appendEvents(nats, to, [marker], { writer: serviceWriter("gateway"), expectOffset: lastAck.seq }).catch((err: unknown) => {
    if (err instanceof AgentmeshError && err.code === "OFFSET_CONFLICT") throw interrupted(to);
    throw err;
  });
  return { forked: result.events[0] as EventEnvelope, events: copied };
}

async function settleOldest(inFlight: Promise<PubAck>[], to: StreamPath): Promise<PubAck> {
  const next = inFlight.shift() as Promise<PubAck>;
  try {
    return await next;
  } catch (err) {
    if (err instanceof JetStreamApiError && (err.code === JetStreamErrorCodes.wrongLastSequence || err.code === JetStreamErrorCodes.wrongLastSequenceUnknown)) {
      throw new AgentmeshError("STREAM_EXISTS", `A stream exists at ${to}; a fork makes a new one`);
    }
    throw err;
  }
}

/**
 * The copies made so far: where each source offset landed in the fork, and the events the gateway's indexes follow.
 * An event names earlier offsets of its own stream only, so each was published before it.
 */
class Copies {
  count = 0;
  /** The copies of pauses, resumes and inbound webhook secrets, in order, once acknowledged. */
  readonly indexed: EventEnvelope[] = [];
  private readonly landedAt = new Map<number, number>();
  private readonly landing = new Map<number, Promise<PubAck>>();

  constructor(
    private readonly request: ForkRequest,
    private readonly secrets: SecretBox | null,
  ) {}

  /** The acks still to come of the copies this event names. */
  pendingReferences(event: EventEnvelope): Promise<PubAck>[] {
    const pending: Promise<PubAck>[] = [];
    for (const offset of referencedOffsets(event)) {
      const ack = this.landedAt.has(offset) ? undefined : this.landing.get(offset);
      if (ack !== undefined) pending.push(ack);
    }
    return pending;
  }

  published(event: EventEnvelope, copy: StoredBody, ack: Promise<PubAck>): void {
    this.count += 1;
    this.landing.set(event.offset, ack);
    const index = INDEXED_TYPES.has(event.type) ? this.indexed.length : -1;
    if (index >= 0) this.indexed.push({ ...event, streamPath: this.request.to, payload: copy.payload });
    // Failures are awaited, in order, by the caller's window.
    ack.then(
      (a) => {
        this.landedAt.set(event.offset, a.seq);
        this.landing.delete(event.offset);
        const indexed = this.indexed[index];
        if (indexed !== undefined) indexed.offset = a.seq;
      },
      () => undefined,
    );
  }

  /** The event as the fork stores it: the same, but for the offsets it names, its sealed credentials, and `forkedFrom`. */
  copyOf(event: EventEnvelope): StoredBody {
    const { from, to } = this.request;
    const translate = (offset: number): number => this.landedAt.get(offset) ?? offset;
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

/** The offsets of its own stream an event names: its cause and its payload's offset fields. */
function referencedOffsets(event: EventEnvelope): number[] {
  const offsets: number[] = [];
  if (event.source !== undefined) offsets.push(event.source.causationOffset);
  const fields = PayloadOffsetFields[event.type];
  if (fields !== undefined && isRecord(event.payload)) {
    for (const field of fields) {
      const value = event.payload[field];
      if (typeof value === "number") offsets.push(value);
    }
  }
  return offsets;
}

/** The target holds exactly the copies: no other writer's event came in between. */
async function requireOnlyCopies(nats: Nats, to: StreamPath, copied: number): Promise<void> {
  const subject = eventsSubject(to);
  const info = await nats.jsm.streams.info(nats.streamName, { subjects_filter: subject }).catch((err: unknown) => {
    throw natsFailure(err);
  });
  const stored = info.state.subjects?.[subject] ?? 0;
  if (stored !== copied) throw interrupted(to);
}

function interrupted(to: StreamPath): AgentmeshError {
  return new AgentmeshError("FORK_INTERRUPTED", `Another writer appended to ${to} while the fork was being copied, so its history is not the source's; fork again to a new path`);
}
