import { ProcessorNames, SystemEventTypes } from "../../shared/contract/wire.js";
import { traceSpansExported } from "../../shared/service/metrics.js";
import type { Logger } from "../../shared/service/logger.js";
import type { SpanRecord } from "../../shared/traces/span-record.js";
import { spansOfTurn } from "../../shared/traces/turn-spans.js";
import { initialTurns, reduceTurns, type Turn, type TurnsState } from "../../shared/traces/turns.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { typeMatcher } from "../../shared/contract/type-glob.js";
import type { Processor } from "../runtime/runtime.js";

export const TRACES_NAME = ProcessorNames.traces;

export interface SpanSink {
  readonly url: string;
  export(spans: readonly SpanRecord[]): Promise<void>;
}

/** Closed turns kept with the event that sends them: enough for a processor that handles a stream a little behind. */
const DUE_KEPT = 32;
/** The stream's latest resumes: a resume sends again what a pause may have kept from being sent. */
const RESUMES_KEPT = 4;
/** One warning per this long while the collector keeps failing, with the count: a collector down is not a log flood. */
const WARN_EVERY_MS = 60_000;

/**
 * A turn closes on an event of the agent loop (or a pause or resume): other events are folded into the state when it
 * is read, but handling them would only cost (the runtime acks them unread).
 */
const TRIGGERS = ["agent/**", "stream/**"] as const;
const isTrigger = typeMatcher(TRIGGERS);

export interface TracesState {
  turns: TurnsState;
  /** Turns closed at an event this processor does not handle (a timeout noticed at any event), waiting for one it does. */
  waiting: readonly Turn[];
  /** Closed turns, each with the offset of the event whose handling sends it: the first this processor handles at or after its close. */
  due: readonly { turn: Turn; at: number }[];
  resumes: readonly number[];
}

export function initialTracesState(): TracesState {
  return { turns: initialTurns(), waiting: [], due: [], resumes: [] };
}

/**
 * The turns, and which event sends each: a function of the stream, so whichever replica handles that event sends
 * them (nothing depends on what a replica remembers).
 */
export function reduceTracesState(state: TracesState, event: EventEnvelope): TracesState {
  const turns = reduceTurns(state.turns, event);
  const closedHere = turns.closed === state.turns.closed ? [] : turns.closed.filter((turn) => turn.closedAtOffset === event.offset);
  const handled = isTrigger(event.type) && event.forkedFrom === undefined;
  if (!handled) return closedHere.length === 0 && turns === state.turns ? state : { ...state, turns, waiting: [...state.waiting, ...closedHere].slice(-DUE_KEPT) };
  const ready = [...state.waiting, ...closedHere];
  return {
    turns,
    waiting: [],
    due: ready.length === 0 ? state.due : [...state.due, ...ready.map((turn) => ({ turn, at: event.offset }))].slice(-DUE_KEPT),
    resumes: event.type === SystemEventTypes.resumed ? [...state.resumes, event.offset].slice(-RESUMES_KEPT) : state.resumes,
  };
}

/**
 * The turns to send on handling `event`: those due at it. The runtime does not call `react` while a stream is paused
 * (it skips an event it handles while a pause is stored after it, too), so a turn due at such an event is not sent
 * then: a resume sends again every turn due since the stream's previous resume (at least once: some were sent already,
 * with the same ids).
 */
export function dueTurns(state: TracesState, event: EventEnvelope): Turn[] {
  const since = event.type === SystemEventTypes.resumed ? Math.max(0, ...state.resumes.filter((offset) => offset < event.offset)) : event.offset - 1;
  return state.due.filter((entry) => entry.at > since && entry.at <= event.offset).map((entry) => entry.turn);
}

/**
 * Turns the log into OpenTelemetry traces: folds each stream into its turns (shared/traces/turns.ts) and, when it
 * handles the event that closed a turn (or the stream's next event it handles: below), sends the turn's spans to the
 * collector. It appends nothing.
 *
 * Sending is at least once: a redelivered event, or two replicas, may send a turn again, with the same ids (the spans
 * are a function of the log), which collectors store as the same spans. Which event sends a turn is decided by the
 * fold, not by a replica's memory: the turn's closing event, or, if this processor does not handle that one, the
 * stream's next event it does. A collector that refuses is logged and counted, not retried through the log: the spans
 * are not lost, `agentmesh traces export <path>` sends them again from the stream's history.
 */
export function tracesProcessor(deps: { exporter: SpanSink }): Processor<TracesState> {
  let failuresSinceWarning = 0;
  let lastWarningAt = 0;

  const send = async (turns: readonly Turn[], log: Logger): Promise<void> => {
    const spans = turns.flatMap(spansOfTurn);
    try {
      await deps.exporter.export(spans);
      traceSpansExported.inc({ outcome: "exported" }, spans.length);
      log.debug({ turns: turns.length, spans: spans.length }, "turn traces exported");
    } catch (err) {
      traceSpansExported.inc({ outcome: "failed" }, spans.length);
      failuresSinceWarning += 1;
      if (Date.now() - lastWarningAt >= WARN_EVERY_MS) {
        log.warn({ err, failures: failuresSinceWarning, url: deps.exporter.url }, "could not export traces (agentmesh traces export sends them again)");
        lastWarningAt = Date.now();
        failuresSinceWarning = 0;
      }
    }
  };

  return {
    name: TRACES_NAME,
    triggers: TRIGGERS,
    initialState: initialTracesState,
    reduce: reduceTracesState,
    // It appends nothing: no decision to serialise, and a state a little past the event serves as well as the latest
    // (what is due at an event stays in the state after it).
    serialiseDecisions: false,
    decideOnCachedState: true,
    react: async ({ event, stream, log }) => {
      const due = dueTurns(stream.state, event);
      if (due.length > 0) await send(due, log);
      return [];
    },
  };
}
