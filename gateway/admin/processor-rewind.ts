import { AckPolicy, DeliverPolicy, JetStreamApiError, type ConsumerConfig, type ConsumerInfo } from "@nats-io/jetstream";
import { AgentmeshError } from "../../shared/contract/errors.js";
import type { ProcessorRewoundBody } from "../../shared/contract/http-bodies.js";
import { ConsumerNames } from "../../shared/contract/wire.js";
import { natsFailure, type Nats } from "../../shared/nats/connection.js";

/** Where a rewound consumer starts: an offset, or the first event stored at or after a time. */
export type RewindTarget = { offset: number } | { time: Date };

/** docs/EVENTS.md: a processor's name is `[A-Za-z0-9_-]{1,64}`; anything else cannot have a consumer. */
const PROCESSOR_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** RFC 3339 with a time zone: a time without one would depend on the gateway's zone. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
/**
 * Delete-and-create rounds before giving up. A replica that starts while its consumer is missing creates it with its
 * own deliver policy (processors/runtime/runtime.ts `start`); each round after that deletes it again, and the window
 * is one round trip, so two rounds are already rare.
 */
const MAX_ATTEMPTS = 5;
/** JetStream's answer to creating a consumer that exists with another configuration (nats-server 2.9: 10012; 2.10+: 10148 when the create says so). */
const CONSUMER_EXISTS_OTHERWISE_CODES = new Set([10012, 10148]);
/** The probe that turns a time into an offset is deleted at once; this only bounds a gateway dying in between. */
const PROBE_INACTIVE_NS = 30_000_000_000;

/** `to` as the route and the CLI take it: an offset (an integer from 1) or an RFC 3339 time not in the future. */
export function parseRewindTarget(to: number | string, now = new Date()): RewindTarget {
  if (typeof to === "number") {
    if (!Number.isSafeInteger(to) || to < 1) throw new AgentmeshError("INVALID_REWIND_TARGET", `to: ${to} is not an offset (an integer from 1)`);
    return { offset: to };
  }
  if (/^\d+$/.test(to)) return parseRewindTarget(Number(to), now);
  const time = new Date(to);
  if (!RFC3339.test(to) || Number.isNaN(time.getTime())) throw new AgentmeshError("INVALID_REWIND_TARGET", `to: ${JSON.stringify(to)} is neither an offset nor an RFC 3339 time`);
  // Starting at a future time would skip every event stored until then: never what a rewind is for.
  if (time.getTime() > now.getTime()) throw new AgentmeshError("INVALID_REWIND_TARGET", `to: ${to} is in the future (the gateway's clock says ${now.toISOString()})`);
  return { time };
}

/** Rewinds of one processor from this gateway, one at a time: two interleaved would undo each other's create. */
const inProgress = new Map<string, Promise<unknown>>();

/**
 * Move a processor's durable consumer back so that it delivers again every event from `target` on. nats-server 2.9
 * cannot change a consumer's start in place, so the consumer is deleted and created again with the same
 * configuration (name, filter, ack wait, max deliver, max ack pending) and `deliver_policy: by_start_sequence`.
 * Running replicas keep their subscription: their pulls are answered "consumer deleted", and the client library
 * pulls again from the new consumer of the same name once it notices (docs/ARCHITECTURE.md, "Rewinding a
 * processor"). A webhook subscription's consumer is not a processor's and is never rewound here.
 */
export async function rewindProcessor(nats: Nats, name: string, to: number | string): Promise<ProcessorRewoundBody> {
  const target = parseRewindTarget(to);
  if (!PROCESSOR_NAME.test(name)) throw notFound(name);
  const previous = inProgress.get(name) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(() => rewind(nats, name, to, target));
  inProgress.set(name, run);
  try {
    return await run;
  } finally {
    if (inProgress.get(name) === run) inProgress.delete(name);
  }
}

function notFound(name: string): AgentmeshError {
  return new AgentmeshError("PROCESSOR_NOT_FOUND", `No processor named ${JSON.stringify(name)} has a durable consumer (GET /processors lists them; webhook subscriptions cannot be rewound)`);
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.status === 404;
}

async function rewind(nats: Nats, name: string, to: number | string, target: RewindTarget): Promise<ProcessorRewoundBody> {
  if (!nats.isConnected()) throw new AgentmeshError("NATS_UNAVAILABLE");
  const consumer = ConsumerNames.processor(name);
  try {
    // The log's end is read before the consumer: if the consumer then has nothing pending, it handled all of that.
    const lastOffset = (await nats.jsm.streams.info(nats.streamName)).state.last_seq;
    const before = await nats.jsm.consumers.info(nats.streamName, consumer).catch((err: unknown) => {
      throw isNotFound(err) ? notFound(name) : err;
    });
    const start = "offset" in target ? target.offset : await offsetAt(nats, target.time, before.config.filter_subject);
    const handledThrough = handledUpTo(before, lastOffset);
    if (start > handledThrough + 1) {
      throw new AgentmeshError("REWIND_AHEAD", `${name} has handled every event up to offset ${handledThrough} only: starting at ${start} would skip events it has not handled (a rewind only moves back)`, {
        details: { handledThrough, start },
      });
    }
    const wanted: Partial<ConsumerConfig> = { ...before.config, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start };
    delete wanted.opt_start_time;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const after = await recreate(nats, consumer, wanted);
      if (after !== null && startsAt(after, start)) {
        return {
          processor: name,
          consumer,
          to,
          before: { ackFloor: before.ack_floor.stream_seq, delivered: before.delivered.stream_seq, pending: before.num_pending, ackPending: before.num_ack_pending },
          start,
          pending: after.num_pending,
          attempts: attempt,
        };
      }
    }
    throw new AgentmeshError("INTERNAL", `${consumer} was created again by a replica ${MAX_ATTEMPTS} times during its rewind; try again`);
  } catch (err) {
    throw natsFailure(err);
  }
}

/**
 * One round: delete, create with the wanted start, read it back. Null when a replica created the consumer in
 * between with its own start: the create is then refused (2.9 cannot change a deliver policy) or, read back, the
 * consumer is not ours.
 */
async function recreate(nats: Nats, consumer: string, wanted: Partial<ConsumerConfig>): Promise<ConsumerInfo | null> {
  await nats.jsm.consumers.delete(nats.streamName, consumer).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
  try {
    await nats.jsm.consumers.add(nats.streamName, wanted);
  } catch (err) {
    // 10012 "deliver policy can not be updated": a replica's create came between our delete and our create.
    if (err instanceof JetStreamApiError && CONSUMER_EXISTS_OTHERWISE_CODES.has(err.code)) return null;
    throw err;
  }
  // Read back rather than trusting the create's answer: 2.9 answers a create of an identical existing consumer with it.
  return nats.jsm.consumers.info(nats.streamName, consumer).catch((err: unknown) => {
    if (isNotFound(err)) return null;
    throw err;
  });
}

/**
 * The offset up to which the consumer has handled every event; starting past it would skip events never handled.
 * nats-server 2.9 reports an ack floor of 0 until a consumer's first ack, and a filtered consumer's floor stays at its
 * last matching event: with nothing unacknowledged, everything delivered was handled (and, with nothing pending, the
 * whole log as it was before the consumer was read); a consumer made to start at an offset skipped what lies before.
 */
function handledUpTo(info: ConsumerInfo, lastOffset: number): number {
  const floor = info.ack_floor.stream_seq;
  if (info.num_ack_pending === 0) return Math.max(floor, info.delivered.stream_seq, info.num_pending === 0 ? lastOffset : 0);
  const skipped = info.config.deliver_policy === DeliverPolicy.StartSequence ? (info.config.opt_start_seq ?? 1) - 1 : 0;
  return Math.max(floor, skipped);
}

function startsAt(info: ConsumerInfo, start: number): boolean {
  return info.config.deliver_policy === DeliverPolicy.StartSequence && info.config.opt_start_seq === start;
}

/**
 * The first offset stored at or after `time` in the consumer's filter (the last offset + 1 if none is): a consumer
 * made to start at that time reports it as delivered + 1 before delivering anything. JetStream's own storage time
 * decides, as for `?at=` reads.
 */
async function offsetAt(nats: Nats, time: Date, filter: string | undefined): Promise<number> {
  const probe = await nats.jsm.consumers.add(nats.streamName, {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: time.toISOString(),
    mem_storage: true,
    inactive_threshold: PROBE_INACTIVE_NS,
    ...(filter === undefined || filter === "" ? {} : { filter_subject: filter }),
  });
  try {
    return probe.delivered.stream_seq + 1;
  } finally {
    await nats.jsm.consumers.delete(nats.streamName, probe.name).catch(() => false);
  }
}
