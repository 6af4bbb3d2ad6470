import { AgentmeshError } from "../../shared/contract/errors.js";
import { eventsSubject, type StreamPath } from "../../shared/contract/subjects.js";
import { eachFewEvents, lastOffset } from "../../shared/log/read.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { BreakerLimits } from "../../shared/state/breaker.js";
import { processorFolds, type ViewedProcessor } from "../../shared/state/views.js";

export interface StreamStateAnswer {
  path: StreamPath;
  /** The offset asked for (the stream's last offset when none was). */
  at: number;
  /** The stream's last event at or before `at`, the last event folded; 0 if there is none. */
  throughOffset: number;
  /** The stream's last offset now. */
  lastOffset: number;
  eventsFolded: number;
  processors: Record<string, { state: unknown; stream: unknown }>;
}

/**
 * Each processor's state of a stream right after the event at `at`, folded
 * from the log by the processors' own reducers (shared/state): a read of the
 * stream from its start up to `at`, one pass for every processor asked about.
 */
export async function streamStateAt(nats: Nats, path: StreamPath, options: { at: number | undefined; processors: readonly ViewedProcessor[]; breakerDefaults: BreakerLimits }): Promise<StreamStateAnswer> {
  const last = await lastOffset(nats, path);
  if (last === 0) throw new AgentmeshError("STREAM_NOT_FOUND", `No stream at ${path}`);
  const at = options.at ?? last;
  const folds = processorFolds(options.processors, options.breakerDefaults);
  let throughOffset = 0;
  let eventsFolded = 0;
  await eachFewEvents(nats, eventsSubject(path), 1, Math.min(at, last), (event) => {
    for (const { domain, stream } of folds.values()) {
      domain.add(event.envelope);
      stream.add(event.envelope);
    }
    throughOffset = event.offset;
    eventsFolded++;
  });
  const processors: StreamStateAnswer["processors"] = {};
  for (const [name, { domain, stream }] of folds) processors[name] = { state: domain.present(), stream: stream.present() };
  return { path, at, throughOffset, lastOffset: last, eventsFolded, processors };
}
