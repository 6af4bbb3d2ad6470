import type { EventEnvelope } from "../contract/envelope.js";
import { AgentEventTypes, SystemEventTypes } from "../contract/wire.js";
import { traceEventOf, type TraceEvent } from "./trace-event.js";

/**
 * An agent's turns, folded from its stream: a pure reducer (like shared/state), which the traces processor runs
 * live and `agentmesh traces export` runs over a stream's history, so both find the same turns with the same events
 * (docs/ARCHITECTURE.md, "Traces").
 *
 * A turn opens at an input that asks for an answer (`trigger` auto or interrupt) when none is open, and lasts until
 * the agent loop is idle again: no model request running, no tool call open, no request wanted (the rules of
 * shared/state/conversation.ts). Inputs that arrive meanwhile join it, since the loop answers them in the same run.
 * Its events are the loop's own and every reaction, by any processor, to one of its events (`source`).
 *
 * In a fork, turns are the fork's own: a turn rooted at an inherited event (`forkedFrom`) is its source's, traced
 * there, and is never one of the fork's (neither the processor, which does not handle inherited events, nor an export
 * of the fork sends it). At `stream/forked` (the fork's, or a copy of one in a fork of a fork) the turn open at the
 * fork point is left to the source, and if the loop is not idle (a request in flight, a tool call open, an input
 * unanswered) the fork's turn opens at `stream/forked` itself: the processors take the open work up in reactions to
 * that event, and the runtime roots their `traceparent` at it (an event no processor wrote roots the trace of its own
 * offset), so the fork's turn and its reactions share one trace of the fork's.
 */

export type TurnOutcome = "answered" | "failed" | "cancelled" | "paused" | "timed-out" | "open";

export interface Turn {
  path: string;
  /** The event that opened it: its offset names the trace. */
  rootOffset: number;
  outcome: TurnOutcome;
  /** The offset of the event that closed it (for a turn still open, its last event's). */
  closedAtOffset: number;
  /** Its events in offset order, the root first. */
  events: readonly TraceEvent[];
  /** Events past MAX_TURN_EVENTS, counted rather than kept. */
  dropped: number;
  /**
   * For a turn opened at `stream/forked` or `stream/resumed`: the `agent/tool-call-requested` of the calls still open
   * then, requested in an earlier turn (or inherited) and settled in this one, whose spans are this turn's; and, in a
   * fork, the source's turn it goes on from.
   */
  carried: readonly TraceEvent[];
  continues?: { path: string; rootOffset: number };
}

interface OpenTurn {
  path: string;
  rootOffset: number;
  rootCreatedAtMs: number;
  /** Its root was inherited: the turn is the source's, dropped rather than closed. */
  inherited: boolean;
  events: readonly TraceEvent[];
  offsets: ReadonlySet<number>;
  dropped: number;
  carried: readonly TraceEvent[];
  continues?: { path: string; rootOffset: number };
  /** The status of its last settled model request, which names the outcome. */
  lastStatus: "succeeded" | "failed" | "cancelled" | null;
}

/** What the agent loop is doing, as shared/state/conversation.ts decides it: whether it is idle. */
interface LoopState {
  running: readonly number[];
  /**
   * Tool calls a settled request asked for whose `agent/tool-call-requested` is not stored yet: the llm appends them
   * right after the settlement, in the same batch, and the loop is not idle in between.
   */
  announcedCalls: number;
  /** The `agent/tool-call-requested` of each call not settled yet (a fork's turn carries them). */
  pendingCalls: readonly TraceEvent[];
  wantsRequest: boolean;
  /** In a fork, the offset of its own `stream/forked`: a request started before it is the llm's to take over. */
  forkedAt: number | null;
}

export interface TurnsState {
  loop: LoopState;
  open: OpenTurn | null;
  /** Recently closed turns, oldest first: the processor exports each when it handles the event that closed it. */
  closed: readonly Turn[];
}

/**
 * A turn still open after this long (by the events' `createdAt`) is closed as timed out by the next event of its
 * stream: a stream's time is its events', so the processor and a later export close it at the same event.
 */
export const TURN_TIMEOUT_MS = 30 * 60_000;
/** Events kept per turn; past it a runaway turn is counted, not held in memory. */
export const MAX_TURN_EVENTS = 1_000;
/** Closed turns kept for the processor, which may handle a stream's events a little behind its state. */
const CLOSED_KEPT = 32;

const LOOP_TYPES: ReadonlySet<string> = new Set([
  AgentEventTypes.inputAdded,
  AgentEventTypes.requestStarted,
  AgentEventTypes.requestSettled,
  AgentEventTypes.toolCallRequested,
  AgentEventTypes.toolCallSettled,
  AgentEventTypes.toolCallTimedOut,
  AgentEventTypes.paused,
]);

export function initialTurns(): TurnsState {
  return { loop: { running: [], announcedCalls: 0, pendingCalls: [], wantsRequest: false, forkedAt: null }, open: null, closed: [] };
}

const isPending = (loop: LoopState, callId: string): boolean => loop.pendingCalls.some((requested) => requested.detail.kind === "tool-requested" && requested.detail.callId === callId);

/**
 * A request in flight at the fork point has no one running it: the llm settles it as cancelled and starts it again,
 * in one batch, on `stream/forked` (or on the resume of a paused fork). The loop wants that request, so the
 * cancellation does not leave it idle (it would close the turn between the two).
 */
function takenOver(loop: LoopState): LoopState {
  const forkedAt = loop.forkedAt;
  return forkedAt !== null && loop.running.some((offset) => offset < forkedAt) ? { ...loop, wantsRequest: true } : loop;
}

function isIdle(loop: LoopState): boolean {
  return loop.running.length === 0 && loop.announcedCalls === 0 && loop.pendingCalls.length === 0 && !loop.wantsRequest;
}

/** The loop's bookkeeping, the same transitions as the conversation reducer's. */
function reduceLoop(loop: LoopState, event: TraceEvent): LoopState {
  const detail = event.detail;
  switch (detail.kind) {
    case "input":
      return detail.trigger === "none" ? loop : { ...loop, wantsRequest: true };
    case "request-started":
      return { ...loop, running: [...loop.running, event.offset], wantsRequest: false };
    case "request-settled": {
      if (!loop.running.includes(detail.requestOffset)) return loop;
      return { ...loop, running: loop.running.filter((offset) => offset !== detail.requestOffset), announcedCalls: loop.announcedCalls + detail.toolCalls };
    }
    case "tool-requested":
      if (isPending(loop, detail.callId)) return loop;
      return { ...loop, announcedCalls: Math.max(0, loop.announcedCalls - 1), pendingCalls: [...loop.pendingCalls, event] };
    case "tool-settled": {
      // The first settlement wins; a late one changes nothing.
      if (!isPending(loop, detail.callId)) return loop;
      const pendingCalls = loop.pendingCalls.filter((requested) => !(requested.detail.kind === "tool-requested" && requested.detail.callId === detail.callId));
      return { ...loop, pendingCalls, wantsRequest: loop.wantsRequest || pendingCalls.length === 0 };
    }
    default:
      return loop;
  }
}

function turnOf(open: OpenTurn, outcome: TurnOutcome, closedAtOffset: number): Turn {
  return { path: open.path, rootOffset: open.rootOffset, outcome, closedAtOffset, events: open.events, dropped: open.dropped, carried: open.carried, ...(open.continues === undefined ? {} : { continues: open.continues }) };
}

function close(state: TurnsState, open: OpenTurn, outcome: TurnOutcome, atOffset: number): TurnsState {
  // An inherited turn is the source's: it ends here without being one of this stream's.
  if (open.inherited) return { ...state, open: null };
  return { ...state, open: null, closed: [...state.closed, turnOf(open, outcome, atOffset)].slice(-CLOSED_KEPT) };
}

function newTurn(path: string, event: TraceEvent, carried: readonly TraceEvent[], continues?: { path: string; rootOffset: number }): OpenTurn {
  return { path, rootOffset: event.offset, rootCreatedAtMs: event.createdAtMs, inherited: event.forkedFrom !== undefined, events: [event], offsets: new Set([event.offset]), dropped: 0, lastStatus: null, carried, ...(continues === undefined ? {} : { continues }) };
}

/**
 * `stream/forked`: the turn open at the fork point stays the source's; the fork's own opens here when there is open
 * work to take up. It carries the open calls' requests, and names the source's turn (the fork's root event's
 * `forkedFrom` is where the source's trace is rooted: the source folded the same events to the same turn).
 */
function fork(state: TurnsState, event: TraceEvent, path: string): TurnsState {
  const inheritedRoot = state.open?.events[0]?.forkedFrom;
  const loop = { ...state.loop, forkedAt: event.offset };
  if (isIdle(loop)) return { ...state, open: null, loop };
  const next: TurnsState = { ...state, open: null, loop: takenOver(loop) };
  const continues = inheritedRoot === undefined ? undefined : { path: inheritedRoot.path, rootOffset: inheritedRoot.offset };
  return { ...next, open: newTurn(path, event, state.loop.pendingCalls.filter((requested) => requested.forkedFrom !== undefined), continues) };
}

function join(open: OpenTurn, event: TraceEvent): OpenTurn {
  const lastStatus = event.detail.kind === "request-settled" ? event.detail.status : open.lastStatus;
  if (open.events.length >= MAX_TURN_EVENTS) return { ...open, dropped: open.dropped + 1, lastStatus };
  return { ...open, events: [...open.events, event], offsets: new Set(open.offsets).add(event.offset), lastStatus };
}

function belongs(open: OpenTurn, event: TraceEvent): boolean {
  return LOOP_TYPES.has(event.type) || (event.source !== undefined && open.offsets.has(event.source.causationOffset));
}

/**
 * Whether this event opens a turn when none is open: an input that asks for an answer; a resume after which the loop
 * goes on (what it answers was asked before the pause); a model request started by anything else.
 */
function opens(event: TraceEvent, loopBefore: LoopState): boolean {
  if (event.detail.kind === "input") return event.detail.trigger !== "none";
  if (event.type === SystemEventTypes.resumed) return !isIdle(loopBefore);
  return event.detail.kind === "request-started";
}

function outcomeOf(open: OpenTurn): TurnOutcome {
  if (open.lastStatus === "failed") return "failed";
  if (open.lastStatus === "cancelled") return "cancelled";
  return "answered";
}

export function reduceTurns(state: TurnsState, envelope: EventEnvelope): TurnsState {
  // Most events of most streams concern no turn: skip them before parsing anything (the processor folds every event).
  if (state.open === null && !LOOP_TYPES.has(envelope.type) && envelope.type !== SystemEventTypes.resumed && envelope.type !== SystemEventTypes.forked) return state;
  const event = traceEventOf(envelope);
  let next = state;
  if (next.open !== null && event.createdAtMs - next.open.rootCreatedAtMs > TURN_TIMEOUT_MS) next = close(next, next.open, "timed-out", event.offset);
  if (event.detail.kind === "forked") return fork(next, event, envelope.streamPath);
  // A paused fork's inherited request is taken over at the resume (the llm reacts to it, and the runtime roots those
  // reactions' trace there): the turn open since stream/forked ends, and the resume opens the fork's next.
  if (event.type === SystemEventTypes.resumed && takenOver(next.loop) !== next.loop) {
    if (next.open !== null) next = close(next, next.open, "paused", event.offset);
    next = { ...next, loop: takenOver(next.loop) };
  }
  const loopBefore = next.loop;
  next = { ...next, loop: reduceLoop(loopBefore, event) };
  let open = next.open;
  if (open !== null) {
    if (!belongs(open, event)) return next;
    open = join(open, event);
  } else {
    if (!opens(event, loopBefore)) return next;
    // A resume's turn carries the calls still open, requested before it (their requests are the earlier turn's).
    open = newTurn(envelope.streamPath, event, event.type === SystemEventTypes.resumed ? loopBefore.pendingCalls : []);
  }
  // The llm stopped on its turn limit: the turn ends here; a person's resume starts the next one.
  if (event.detail.kind === "paused") return close(next, open, "paused", event.offset);
  if (LOOP_TYPES.has(event.type) && isIdle(next.loop)) return close(next, open, outcomeOf(open), event.offset);
  return { ...next, open };
}

/** The turn still open, as it stands (for an export of a stream's history, which ends somewhere). */
export function openTurn(state: TurnsState): Turn | null {
  const open = state.open;
  // A stream holding only a fork's copies (a fork interrupted before its stream/forked) has no turn of its own yet.
  if (open === null || open.inherited) return null;
  const last = open.events[open.events.length - 1];
  return turnOf(open, "open", last?.offset ?? open.rootOffset);
}

/** Every turn of a stream's history, in order, the one still open last. */
export function turnsOf(events: Iterable<EventEnvelope>): Turn[] {
  const turns: Turn[] = [];
  let state = initialTurns();
  for (const event of events) {
    const before = state.closed;
    state = reduceTurns(state, event);
    if (state.closed !== before) turns.push(...state.closed.filter((turn) => turn.closedAtOffset === event.offset));
  }
  const open = openTurn(state);
  if (open !== null) turns.push(open);
  return turns;
}
