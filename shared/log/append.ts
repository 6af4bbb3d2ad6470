import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { PubAck } from "@nats-io/jetstream";
import { encodeBody, toEnvelope, toStoredBody, type EventEnvelope, type StoredBody, type ValidEventInput } from "../contract/envelope.js";
import { AgentmeshError } from "../contract/errors.js";
import { eventsAppended } from "../service/metrics.js";
import { isCompareAndSetConflict, maxMessageBytes, natsFailure, type Nats } from "../nats/connection.js";
import { getEvent, lastOffset } from "./read.js";
import { SecretFields } from "../contract/credentials.js";
import { sealPayload, type SecretBox } from "./secrets.js";
import { CheckedPayloadSchemas } from "../contract/events/stream.js";
import { eventsSubject, liveSubject, type StreamPath } from "../contract/subjects.js";
import type { StreamIndexes } from "./stream-indexes.js";
import { SystemEventTypes } from "../contract/wire.js";
import { authorizeAppend, type Writer } from "./writer.js";

export interface AppendOptions {
  /** Who appends: the authorization decision (shared/log/writer.ts) is made here, for every way in. */
  writer: Writer;
  /** Seals the credentials some events carry (shared/log/secrets.ts); without it such events are refused. */
  secrets?: SecretBox | null;
  /** Append only if the stream's last offset is this (0: the stream must be empty). */
  expectOffset?: number;
  /**
   * With `expectOffset`: whether each event of the batch is conditioned on the one before it (`each`, the default: no
   * other writer can interleave, as HTTP clients are promised) or only the first (`first`: the batch is one decision,
   * and a writer coming in between must not leave it half stored, which a processor's retry would take as done).
   */
  condition?: "each" | "first";
  /**
   * How long to hold and retry a publish JetStream could not take (a leader election, a lost server) before
   * answering NATS_UNAVAILABLE. Only what was certainly not stored is sent again, or what carries a message id (a
   * repeat of it is dropped by the server). 0 (the default): fail at once, as processors want (they retry the whole
   * decision).
   */
  holdMs?: number;
  /**
   * Give each event without an idempotency key a message id of its own, so that a publish whose ack was lost (the
   * connected server died) can be sent again too without storing it twice. Costs the server a duplicate-window
   * entry per event: the gateway turns it on where acks get lost, with the stream on several servers.
   */
  ownMessageIds?: boolean;
  /** Refuse appends to paused streams (all but stream/resumed), and record what this append changes in the indexes. */
  indexes?: StreamIndexes;
  /**
   * The caller read the stream up to this offset and found it not paused. The
   * index is a cache that can lag the log by a moment: a pause it reports at or
   * before this offset has already been resumed.
   */
  unpausedThrough?: number;
}

/** How an append rides out a leader election or a lost server (AppendOptions). */
export type AppendHold = Pick<AppendOptions, "holdMs" | "ownMessageIds">;

export interface AppendResult {
  /** One envelope per input, in input order; a duplicate shows the event stored the first time. */
  events: EventEnvelope[];
  /** The same envelopes as JSON text, built from the stored bytes' text instead of serialising again. */
  json: string[];
  /** How many inputs were stored now (the rest were idempotent retries). */
  stored: number;
}

interface Prepared {
  body: StoredBody;
  text: string;
  bytes: Uint8Array;
  msgId: string | undefined;
  /** The message id is the append's own, not a client's key: a duplicate ack is this append's earlier try. */
  ownId: boolean;
}

/** Until when a failed publish may be sent again; undefined: never. */
type Hold = { until: number } | undefined;

/**
 * Append events to one stream, in order. Idempotency keys become JetStream
 * message ids (namespaced by path, since the dedupe window is stream-wide), so
 * a retry stores nothing new. `expectOffset` uses JetStream's
 * expected-last-subject-sequence: the server decides, no lock is held.
 *
 * A batch is not atomic: a failure part-way leaves the events before it stored
 * (the error says how many). Clients that retry with idempotency keys are safe.
 */
export async function appendEvents(nats: Nats, path: StreamPath, inputs: readonly ValidEventInput[], options: AppendOptions): Promise<AppendResult> {
  authorizeAppend(options.writer, path, inputs);
  const hold: Hold = options.holdMs !== undefined && options.holdMs > 0 ? { until: performance.now() + options.holdMs } : undefined;
  await connected(nats, hold);
  const pause = options.indexes?.pauseStatus(path);
  const staleIndex = pause !== undefined && options.unpausedThrough !== undefined && pause.offset <= options.unpausedThrough;
  if (pause?.paused === true && !staleIndex && inputs.some((input) => input.type !== SystemEventTypes.resumed)) {
    throw new AgentmeshError("STREAM_PAUSED", `The stream ${path} is paused (${pause.reason ?? "no reason given"}); only ${SystemEventTypes.resumed} is accepted until a person resumes it`, {
      details: { pausedAtOffset: pause.offset, reason: pause.reason },
    });
  }
  const subject = eventsSubject(path);
  const createdAt = new Date().toISOString();
  const appendId = options.ownMessageIds === true ? randomUUID() : "";
  const maxBytes = maxMessageBytes(nats);
  for (const [index, input] of inputs.entries()) checkPayload(input, index);
  const secrets = options.secrets ?? null;
  const prepared = inputs.map((input, index): Prepared => {
    const body = toStoredBody({ ...input, payload: sealPayload(secrets, path, input.type, input.payload, index) }, createdAt);
    const text = serialise(body, index);
    const bytes = Buffer.from(text);
    if (bytes.byteLength > maxBytes) {
      throw new AgentmeshError("EVENT_TOO_LARGE", `Event ${index} is ${bytes.byteLength} bytes; NATS accepts at most ${maxBytes} per event`, {
        details: { index, maxBytes },
      });
    }
    if (input.idempotencyKey !== undefined) return { body, text, bytes, msgId: messageId(options.writer, path, input.idempotencyKey), ownId: false };
    return { body, text, bytes, msgId: options.ownMessageIds === true ? `${path}|own:${appendId}:${index}` : undefined, ownId: options.ownMessageIds === true };
  });

  const acks = options.expectOffset === undefined
    ? await publishPipelined(nats, subject, prepared, hold)
    : options.condition === "first"
      ? await publishAfterFirst(nats, path, subject, prepared, options.expectOffset)
      : await publishChained(nats, path, subject, prepared, options.expectOffset, hold);

  let stored = 0;
  const json: string[] = new Array<string>(acks.length);
  const events: EventEnvelope[] = new Array<EventEnvelope>(acks.length);
  const duplicates: Promise<void>[] = [];
  // A retry shows what was stored the first time, but only to a writer who may read it: an idempotency key
  // must not let an append-only token read another writer's event.
  const showStored = options.writer.may("read", path);
  for (const [index, ack] of acks.entries()) {
    const item = prepared[index] as Prepared;
    // A repeat of the append's own id is its own earlier try, stored now as far as the writer is concerned.
    if (!ack.duplicate || item.ownId) {
      stored += 1;
      // Paths are unreserved characters only, so they need no escaping; the body is our own JSON object.
      json[index] = `{"streamPath":"${path}","offset":${ack.seq},${item.text.slice(1)}`;
      events[index] = toEnvelope(path, ack.seq, createdAt, item.body);
      continue;
    }
    if (!showStored) {
      events[index] = toEnvelope(path, ack.seq, createdAt, item.body);
      json[index] = JSON.stringify(events[index]);
      continue;
    }
    duplicates.push(
      getEvent(nats, ack.seq).then((found) => {
        const original = found ?? toEnvelope(path, ack.seq, createdAt, item.body);
        json[index] = JSON.stringify(original);
        events[index] = original;
      }),
    );
  }
  if (duplicates.length > 0) await Promise.all(duplicates);
  eventsAppended.inc({ outcome: "stored" }, stored);
  if (stored < events.length) eventsAppended.inc({ outcome: "duplicate" }, events.length - stored);
  if (options.indexes !== undefined) await options.indexes.observe(path, events);
  return { events, json, stored };
}

/**
 * The JetStream dedupe id of a keyed event: `<path>|<key>` for the mesh's services, `<path>|<scope>:<key>` for
 * clients and webhooks, so that a client cannot store an event under a key a processor will use (its reaction,
 * the breaker's pause, would then be dropped as a repeat).
 */
function messageId(writer: Writer, path: StreamPath, key: string): string {
  return writer.keyScope === undefined ? `${path}|${key}` : `${path}|${writer.keyScope}:${key}`;
}

function checkPayload(input: ValidEventInput, index: number): void {
  const schema = CheckedPayloadSchemas[input.type];
  if (schema === undefined) return;
  const checked = schema.safeParse(input.payload);
  if (checked.success) return;
  const issue = checked.error.issues[0];
  const field = ["payload", ...(issue?.path ?? []).map(String)].join(".");
  throw new AgentmeshError("INVALID_EVENT", `Event ${index} (${input.type}): ${field}: ${issue?.message ?? "invalid"}`, { details: { index, field } });
}

/** JSON that parsed can still nest too deeply to serialise again: that is the client's error, not ours. */
function serialise(body: StoredBody, index: number): string {
  try {
    return JSON.stringify(body);
  } catch (err) {
    if (err instanceof RangeError) throw new AgentmeshError("INVALID_EVENT", `Event ${index} nests values too deeply to store`, { details: { index } });
    throw err;
  }
}

function publishOne(nats: Nats, subject: string, item: Prepared, expectLast?: number): Promise<PubAck> {
  return nats.publisher.publish(subject, item.bytes, {
    ...(item.msgId === undefined ? {} : { msgId: item.msgId }),
    ...(expectLast === undefined ? {} : { expectLastSubjectSequence: expectLast }),
  });
}

/**
 * All publishes go out at once; one connection keeps them in order on the server. Within a hold, the events from
 * the first that failed on are sent again when none after it was stored and each may be sent again (below), so the
 * batch stays in order.
 */
async function publishPipelined(nats: Nats, subject: string, prepared: Prepared[], hold?: Hold): Promise<PubAck[]> {
  const acks: PubAck[] = [];
  for (let from = 0, attempt = 0; ; attempt++) {
    const settled = await Promise.allSettled(prepared.slice(from).map((item) => publishOne(nats, subject, item)));
    const firstFailure = settled.findIndex((s) => s.status === "rejected");
    if (firstFailure === -1) return [...acks, ...settled.map((s) => (s as PromiseFulfilledResult<PubAck>).value)];
    acks.push(...settled.slice(0, firstFailure).map((s) => (s as PromiseFulfilledResult<PubAck>).value));
    const rest = settled.slice(firstFailure);
    const reason: unknown = (rest[0] as PromiseRejectedResult).reason;
    const again = rest.every((s, i) => s.status === "rejected" && mayPublishAgain(s.reason, prepared[from + firstFailure + i] as Prepared));
    if (!again || !(await waitToRetry(nats, hold, attempt))) {
      throw withAppended(natsFailure(reason), acks.length + rest.filter((s) => s.status === "fulfilled").length);
    }
    from += firstFailure;
  }
}

/**
 * Whether a failed publish may be sent again: JetStream surely did not store it (nothing answered, or it was never
 * sent), or it carries a message id, so that a repeat of one that was stored is dropped by the server.
 */
function mayPublishAgain(err: unknown, item: Prepared): boolean {
  if (!(err instanceof AgentmeshError) || err.code !== "NATS_UNAVAILABLE") return false;
  return err.details.stored === false || item.msgId !== undefined;
}

/** Wait before sending again, 50 ms doubling to 1 s (and until connected); false when the hold is over. */
async function waitToRetry(nats: Nats, hold: Hold, attempt: number): Promise<boolean> {
  if (hold === undefined) return false;
  const left = hold.until - performance.now();
  if (left <= 0) return false;
  await sleep(Math.min(1_000, 50 * 2 ** attempt, left));
  try {
    await connected(nats, hold);
    return true;
  } catch {
    return false;
  }
}

/** Connected to NATS, waiting for a reconnect within the hold; NATS_UNAVAILABLE otherwise. */
async function connected(nats: Nats, hold: Hold): Promise<void> {
  while (!nats.isConnected()) {
    if (hold === undefined || performance.now() + 50 > hold.until) throw new AgentmeshError("NATS_UNAVAILABLE");
    await sleep(50);
  }
}

/** One publish, sent again within the hold while it may be (mayPublishAgain). */
async function publishHeld(nats: Nats, subject: string, item: Prepared, expectLast: number, hold: Hold): Promise<PubAck> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await publishOne(nats, subject, item, expectLast);
    } catch (err) {
      if (!mayPublishAgain(err, item) || !(await waitToRetry(nats, hold, attempt))) throw err;
    }
  }
}

/** The first event conditioned on the stream's last offset; the rest, once it is stored, pipelined after it. */
async function publishAfterFirst(nats: Nats, path: StreamPath, subject: string, prepared: Prepared[], expectOffset: number): Promise<PubAck[]> {
  const [first, ...rest] = prepared;
  if (first === undefined) return [];
  const head = await publishChained(nats, path, subject, [first], expectOffset);
  if (rest.length === 0) return head;
  try {
    return [...head, ...(await publishPipelined(nats, subject, rest))];
  } catch (err) {
    // The first event is stored too: the count a retrying caller sees includes it.
    if (err instanceof AgentmeshError) throw new AgentmeshError(err.code, err.message, { details: { ...err.details, appended: 1 + Number(err.details.appended ?? 0) }, cause: err.cause });
    throw err;
  }
}

/** Each event is conditioned on the one before it, so no other writer can interleave. */
async function publishChained(nats: Nats, path: StreamPath, subject: string, prepared: Prepared[], expectOffset: number, hold?: Hold): Promise<PubAck[]> {
  const acks: PubAck[] = [];
  let expected = expectOffset;
  for (const item of prepared) {
    try {
      const ack = await publishHeld(nats, subject, item, expected, hold);
      acks.push(ack);
      // A duplicate (its key was stored earlier) leaves the stream's last offset where it was.
      if (!ack.duplicate) expected = ack.seq;
    } catch (err) {
      if (isCompareAndSetConflict(err)) {
        const current = await lastOffset(nats, path);
        throw new AgentmeshError("OFFSET_CONFLICT", `Expected last offset ${expected}, but the stream's last offset is ${current}`, {
          details: { expectedOffset: expected, lastOffset: current, appended: acks.length },
          cause: err,
        });
      }
      throw withAppended(natsFailure(err), acks.length);
    }
  }
  return acks;
}

function withAppended(error: AgentmeshError, appended: number): AgentmeshError {
  if (appended === 0) return error;
  return new AgentmeshError(error.code, `${error.message} (${appended} events of the batch were stored before the failure)`, {
    details: { ...error.details, appended },
    cause: error.cause,
  });
}

/**
 * Publish an ephemeral event on `live.<tokens>`: SSE readers see it, history
 * never does. Core NATS, so nothing acknowledges it and nothing stores it.
 */
export function publishEphemeral(nats: Nats, writer: Writer, path: StreamPath, input: ValidEventInput, indexes?: StreamIndexes): { createdAt: string } {
  authorizeAppend(writer, path, [input]);
  if (indexes?.isPaused(path) === true) throw new AgentmeshError("STREAM_PAUSED", `The stream ${path} is paused`);
  // Live readers would see the payload as sent: credentials are never ephemeral.
  if (SecretFields[input.type] !== undefined) throw new AgentmeshError("INVALID_EVENT", `${input.type} carries a credential and cannot be ephemeral`);
  if (!nats.isConnected()) throw new AgentmeshError("NATS_UNAVAILABLE");
  const createdAt = new Date().toISOString();
  const body = toStoredBody({ ...input, idempotencyKey: undefined }, createdAt);
  nats.nc.publish(liveSubject(path), encodeBody(body));
  return { createdAt };
}
