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
}

interface OpenTurn {
  path: string;
  rootOffset: number;
  rootCreatedAtMs: number;
  events: readonly TraceEvent[];
  offsets: ReadonlySet<number>;
  dropped: number;
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
  pendingCalls: readonly string[];
  wantsRequest: boolean;
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
  return { loop: { running: [], announcedCalls: 0, pendingCalls: [], wantsRequest: false }, open: null, closed: [] };
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
      if (loop.pendingCalls.includes(detail.callId)) return loop;
      return { ...loop, announcedCalls: Math.max(0, loop.announcedCalls - 1), pendingCalls: [...loop.pendingCalls, detail.callId] };
    case "tool-settled": {
      // The first settlement wins; a late one changes nothing.
      if (!loop.pendingCalls.includes(detail.callId)) return loop;
      const pendingCalls = loop.pendingCalls.filter((callId) => callId !== detail.callId);
      return { ...loop, pendingCalls, wantsRequest: loop.wantsRequest || pendingCalls.length === 0 };
    }
    default:
      return loop;
  }
}

function close(state: TurnsState, open: OpenTurn, outcome: TurnOutcome, atOffset: number): TurnsState {
  const turn: Turn = { path: open.path, rootOffset: open.rootOffset, outcome, closedAtOffset: atOffset, events: open.events, dropped: open.dropped };
  return { ...state, open: null, closed: [...state.closed, turn].slice(-CLOSED_KEPT) };
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
  if (state.open === null && !LOOP_TYPES.has(envelope.type) && envelope.type !== SystemEventTypes.resumed) return state;
  const event = traceEventOf(envelope);
  let next = state;
  if (next.open !== null && event.createdAtMs - next.open.rootCreatedAtMs > TURN_TIMEOUT_MS) next = close(next, next.open, "timed-out", event.offset);
  const loopBefore = next.loop;
  next = { ...next, loop: reduceLoop(loopBefore, event) };
  let open = next.open;
  if (open !== null) {
    if (!belongs(open, event)) return next;
    open = join(open, event);
  } else {
    if (!opens(event, loopBefore)) return next;
    open = { path: envelope.streamPath, rootOffset: event.offset, rootCreatedAtMs: event.createdAtMs, events: [event], offsets: new Set([event.offset]), dropped: 0, lastStatus: null };
  }
  // The llm stopped on its turn limit: the turn ends here; a person's resume starts the next one.
  if (event.detail.kind === "paused") return close(next, open, "paused", event.offset);
  if (LOOP_TYPES.has(event.type) && isIdle(next.loop)) return close(next, open, outcomeOf(open), event.offset);
  return { ...next, open };
}

/** The turn still open, as it stands (for an export of a stream's history, which ends somewhere). */
export function openTurn(state: TurnsState): Turn | null {
  const open = state.open;
  if (open === null) return null;
  const last = open.events[open.events.length - 1];
  return { path: open.path, rootOffset: open.rootOffset, outcome: "open", closedAtOffset: last?.offset ?? open.rootOffset, events: open.events, dropped: open.dropped };
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
