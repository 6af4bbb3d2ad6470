import type { EventEnvelope } from "../contract/envelope.js";
import { AgentmeshError } from "../contract/errors.js";
import { StreamForkedSchema } from "../contract/events/stream.js";
import { eventsSubject, type StreamPath } from "../contract/subjects.js";
import { SystemEventTypes } from "../contract/wire.js";
import { natsFailure, type Nats } from "../nats/connection.js";
import { appendEvents } from "./append.js";
import { ForkCopier } from "./fork-copier.js";
import { getEvent, lastMessage, nextMessage, readRange } from "./read.js";
import type { SecretBox } from "./secrets.js";
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
  /** False when the same fork had been made before (a retry): nothing was copied now. */
  created: boolean;
}

/**
 * Fork a stream (docs/ARCHITECTURE.md, "Forks"): copy its events up to and including `at` to a new stream, each
 * marked `forkedFrom` and with the offsets it refers to (`source.causationOffset`, PayloadOffsetFields) translated
 * to the copies', then append `stream/forked`. The fork is an ordinary subject, so a processor in any language reads
 * it as it reads any stream; processors reduce inherited events and never react to them, and take up what was left
 * open when `stream/forked` arrives.
 *
 * Every copy is conditioned on the one before it on the new subject (ForkCopier), the first on the subject being
 * empty: another writer cannot come in between (FORK_INTERRUPTED), and a second fork to the same path finds it taken.
 * The same fork asked again (a client retrying after a timeout) is answered with the first one's `stream/forked`.
 */
export async function forkStream(nats: Nats, request: ForkRequest, deps: { secrets: SecretBox | null; indexes: StreamIndexes; maxEvents: number }): Promise<ForkResult> {
  const { from, at, to } = request;
  if (from === to) throw new AgentmeshError("STREAM_EXISTS", `A stream cannot be forked onto itself (${to})`);
  const last = await getEvent(nats, at);
  if (last?.streamPath !== from) throw new AgentmeshError("OFFSET_NOT_IN_STREAM", `No event of ${from} is at offset ${at}`, { details: { at } });
  const existing = await existingFork(nats, request);
  if (existing !== null) return existing;
  const length = await subjectLength(nats, eventsSubject(from));
  if (length > deps.maxEvents) {
    throw new AgentmeshError("FORK_TOO_LARGE", `${from} holds ${length} events; a fork copies at most ${deps.maxEvents} (FORK_MAX_EVENTS)`, { details: { events: length, maxEvents: deps.maxEvents } });
  }

  const copier = new ForkCopier(nats, { from, to }, deps.secrets);
  try {
    await copier.copyAll(envelopes(readRange(nats, eventsSubject(from), 1, at)));
  } catch (err) {
    // The pauses and webhook secrets that were copied hold even if the fork stops part-way; a failure to record them
    // must not hide why it stopped.
    if (copier.indexed.length > 0) await deps.indexes.observe(to, copier.indexed).catch(() => undefined);
    throw err;
  }
  if (copier.indexed.length > 0) await deps.indexes.observe(to, copier.indexed);
  if (copier.count === 0) throw new AgentmeshError("OFFSET_NOT_IN_STREAM", `No event of ${from} is at offset ${at}`, { details: { at } });
  // Conditioned on the last copy: nothing may come between the history and the fork's first word.
  const marker = { type: SystemEventTypes.forked, payload: { from, at, events: copier.count, subscriptions: request.subscriptions } };
  const result = await appendEvents(nats, to, [marker], { writer: serviceWriter("gateway"), expectOffset: copier.lastStored }).catch((err: unknown) => {
    if (err instanceof AgentmeshError && err.code === "OFFSET_CONFLICT") throw new AgentmeshError("FORK_INTERRUPTED", `Another writer appended to ${to} as the fork was finished; fork again to a new path`);
    throw err;
  });
  return { forked: result.events[0] as EventEnvelope, events: copier.count, created: true };
}

async function* envelopes(events: AsyncIterable<{ envelope: EventEnvelope }>): AsyncGenerator<EventEnvelope> {
  for await (const { envelope } of events) yield envelope;
}

/**
 * The same fork made before, or null when the path is free: its stream/forked (the fork's first event of its own,
 * whatever was appended after it) names the same source, offset and subscriptions. FORK_IN_PROGRESS while its
 * history is still being copied; STREAM_EXISTS for any other stream there.
 */
async function existingFork(nats: Nats, request: ForkRequest): Promise<ForkResult | null> {
  const subject = eventsSubject(request.to);
  const first = await nextOnSubject(nats, subject, 1);
  if (first === null) return null;
  const taken = new AgentmeshError("STREAM_EXISTS", `A stream exists at ${request.to}; a fork makes a new one`);
  if (first.forkedFrom?.path !== request.from) throw taken;
  const own = await firstOwnEvent(nats, subject, first);
  if (own === null) {
    // Only copies: being made (its last copy is fresh), or a fork that stopped part-way and keeps the path.
    const newest = await lastMessage(nats, subject);
    if (newest !== null && Date.now() - newest.time.getTime() < IN_PROGRESS_MS) throw new AgentmeshError("FORK_IN_PROGRESS", `A fork of ${request.from} is being copied to ${request.to}; ask again in a moment`);
    throw taken;
  }
  const marker = StreamForkedSchema.safeParse(own.payload);
  const same = own.type === SystemEventTypes.forked && marker.success && marker.data.from === request.from && marker.data.at === request.at && marker.data.subscriptions === request.subscriptions;
  if (!same) throw taken;
  return { forked: own, events: marker.data.events, created: false };
}

/** How recent a fork's last copy must be for the fork to count as being made (copies are stored thousands a second). */
const IN_PROGRESS_MS = 5_000;

/** The subject's first event at or after an offset, or null. */
async function nextOnSubject(nats: Nats, subject: string, from: number): Promise<EventEnvelope | null> {
  return (await nextMessage(nats, subject, from))?.decode().envelope ?? null;
}

/**
 * A fork's first event without `forkedFrom` (its stream/forked), found by halving: inherited events come first on
 * the subject, so "inherited" holds for a prefix of it. A few direct gets, however long the history.
 */
async function firstOwnEvent(nats: Nats, subject: string, first: EventEnvelope): Promise<EventEnvelope | null> {
  const last = await lastMessage(nats, subject);
  let low = first.offset + 1;
  let high = last?.seq ?? 0;
  let found: EventEnvelope | null = null;
  while (low <= high) {
    const middle = Math.floor((low + high) / 2);
    const probe = await nextOnSubject(nats, subject, middle);
    if (probe === null) break;
    if (probe.forkedFrom === undefined) {
      found = probe;
      high = middle - 1;
    } else {
      low = probe.offset + 1;
    }
  }
  return found;
}

/** How many events a subject holds, from the stream's per-subject counts. */
async function subjectLength(nats: Nats, subject: string): Promise<number> {
  try {
    const info = await nats.jsm.streams.info(nats.streamName, { subjects_filter: subject });
    return info.state.subjects?.[subject] ?? 0;
  } catch (err) {
    throw natsFailure(err);
  }
}
