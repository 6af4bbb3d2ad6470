import { ProcessorNames } from "../../shared/contract/wire.js";
import { traceSpansExported } from "../../shared/service/metrics.js";
import type { Logger } from "../../shared/service/logger.js";
import type { SpanRecord } from "../../shared/traces/span-record.js";
import { spansOfTurn } from "../../shared/traces/turn-spans.js";
import { initialTurns, reduceTurns, type Turn, type TurnsState } from "../../shared/traces/turns.js";
import type { Processor } from "../runtime/runtime.js";

export const TRACES_NAME = ProcessorNames.traces;

export interface SpanSink {
  readonly url: string;
  export(spans: readonly SpanRecord[]): Promise<void>;
}

/** Streams whose export progress a replica remembers; a forgotten one starts again from the event in hand. */
const STREAMS_REMEMBERED = 10_000;
/** One warning per this long while the collector keeps failing, with the count: a collector down is not a log flood. */
const WARN_EVERY_MS = 60_000;

/**
 * Turns the log into OpenTelemetry traces: folds each stream into its turns (shared/traces/turns.ts) and, when it
 * handles the event that closed a turn (or a later one: below), sends the turn's spans to the collector. It appends
 * nothing.
 *
 * Sending is at least once: a redelivered event, or two replicas, may send a turn again, with the same ids (the spans
 * are a function of the log), which collectors store as the same spans. A turn is sent by whichever replica handles
 * its closing event or, if that event got no `react` (the runtime skips a paused stream), by the next event of the
 * stream it handles. A collector that refuses is logged and counted, not retried through the log: the spans are not
 * lost, `agentmesh traces export <path>` sends them again from the stream's history.
 */
export function tracesProcessor(deps: { exporter: SpanSink }): Processor<TurnsState> {
  const exportedThrough = new Map<string, number>();
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
    // A turn closes on an event of the agent loop (or a pause or resume): other events are folded into the state when
    // it is read, but handling them would only cost (the runtime acks them unread). A turn closed by its timeout at
    // another event is exported at the stream's next agent event.
    triggers: ["agent/**", "stream/**"],
    initialState: initialTurns,
    reduce: reduceTurns,
    // It appends nothing: no decision to serialise, and a state a little past the event serves as well as the latest.
    serialiseDecisions: false,
    decideOnCachedState: true,
    react: async ({ event, stream, log }) => {
      const path = event.streamPath;
      const from = exportedThrough.get(path) ?? event.offset - 1;
      const due = stream.state.closed.filter((turn) => turn.closedAtOffset > from && turn.closedAtOffset <= event.offset);
      exportedThrough.delete(path);
      exportedThrough.set(path, Math.max(from, event.offset));
      if (exportedThrough.size > STREAMS_REMEMBERED) {
        const oldest = exportedThrough.keys().next().value;
        if (oldest !== undefined) exportedThrough.delete(oldest);
      }
      if (due.length > 0) await send(due, log);
      return [];
    },
  };
}
