import { AgentmeshError } from "../../shared/contract/errors.js";
import { DsHeaders } from "./protocol-headers.js";
import type { ProducerState, ProducerTuple } from "./stream-record.js";

/**
 * Idempotent producers: a writer names itself (Producer-Id), its incarnation
 * (Producer-Epoch) and each request (Producer-Seq, from 0). A retry is
 * recognised and not stored twice, a gap is refused, and a newer epoch fences
 * off the older one (a zombie writer after a failover).
 */

const INTEGER = /^\d+$/;
const MAX_PRODUCER_ID_CHARS = 256;
/**
 * Producers a stream remembers; past this, the one unseen longest is
 * forgotten (its next request must start again at Producer-Seq 0). Keeps the
 * stream's record, read and written on every append, small.
 */
export const MAX_PRODUCERS = 256;

/** The producer map after `tuple`'s request, with the least recently seen producer dropped if there are too many. */
export function withProducer(producers: Record<string, ProducerState>, tuple: ProducerTuple, now: number): Record<string, ProducerState> {
  const next = { ...producers, [tuple.id]: { epoch: tuple.epoch, seq: tuple.seq, at: now } };
  const ids = Object.keys(next);
  if (ids.length <= MAX_PRODUCERS) return next;
  const oldest = ids.reduce((a, b) => ((next[a]?.at ?? 0) <= (next[b]?.at ?? 0) ? a : b));
  return Object.fromEntries(Object.entries(next).filter(([id]) => id !== oldest));
}

function integerHeader(name: string, raw: string): number {
  const value = Number(raw);
  if (!INTEGER.test(raw) || !Number.isSafeInteger(value)) throw new AgentmeshError("INVALID_HEADER", `${name} must be a non-negative integer; got ${JSON.stringify(raw.slice(0, 32))}`);
  return value;
}

/** The producer headers of a request: all three or none. */
export function parseProducer(headers: Record<string, string | string[] | undefined>): ProducerTuple | undefined {
  const id = headers[DsHeaders.producerId];
  const epoch = headers[DsHeaders.producerEpoch];
  const seq = headers[DsHeaders.producerSeq];
  if (id === undefined && epoch === undefined && seq === undefined) return undefined;
  if (typeof id !== "string" || typeof epoch !== "string" || typeof seq !== "string") {
    throw new AgentmeshError("INVALID_HEADER", "Producer-Id, Producer-Epoch and Producer-Seq go together: send all three or none");
  }
  if (id.length === 0 || id.length > MAX_PRODUCER_ID_CHARS) throw new AgentmeshError("INVALID_HEADER", `Producer-Id must be 1 to ${MAX_PRODUCER_ID_CHARS} characters`);
  return { id, epoch: integerHeader("Producer-Epoch", epoch), seq: integerHeader("Producer-Seq", seq) };
}

export type ProducerDecision = { kind: "accept" } | { kind: "duplicate"; lastSeq: number };

/** Whether a producer request is new, a retry, or refused (thrown, with the headers a client recovers from). */
export function decideProducer(state: ProducerState | undefined, request: ProducerTuple): ProducerDecision {
  if (state === undefined) {
    if (request.seq === 0) return { kind: "accept" };
    throw seqGap(0, request.seq);
  }
  if (request.epoch < state.epoch) {
    throw new AgentmeshError("PRODUCER_FENCED", `Producer ${request.id} epoch ${request.epoch} is stale; the current epoch is ${state.epoch}`, {
      headers: { [DsHeaders.producerEpoch]: String(state.epoch) },
    });
  }
  if (request.epoch > state.epoch) {
    if (request.seq === 0) return { kind: "accept" };
    throw new AgentmeshError("INVALID_HEADER", `A new epoch (${request.epoch}) must start at Producer-Seq 0; got ${request.seq}`);
  }
  if (request.seq <= state.seq) return { kind: "duplicate", lastSeq: state.seq };
  if (request.seq === state.seq + 1) return { kind: "accept" };
  throw seqGap(state.seq + 1, request.seq);
}

function seqGap(expected: number, received: number): AgentmeshError {
  return new AgentmeshError("PRODUCER_SEQ_GAP", `Expected Producer-Seq ${expected}, got ${received}`, {
    headers: { [DsHeaders.producerExpectedSeq]: String(expected), [DsHeaders.producerReceivedSeq]: String(received) },
  });
}

export function sameTuple(a: ProducerTuple | undefined, b: ProducerTuple | undefined): boolean {
  return a !== undefined && b !== undefined && a.id === b.id && a.epoch === b.epoch && a.seq === b.seq;
}
