import { AgentmeshError } from "../../shared/contract/errors.js";
import { eventsSubject, type StreamPath } from "../../shared/contract/subjects.js";
import { eachFewEvents, lastOffset } from "../../shared/log/read.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { BreakerLimits } from "../../shared/state/breaker.js";
import type { StreamStateBody } from "../../shared/contract/http-bodies.js";
import { processorFolds, type ViewedProcessor } from "../../shared/state/views.js";

/**
 * Folds running at once in this gateway: each reads a stream from its start, so a few clients asking about long
 * streams must not take every read slot and the event loop from everyone else; the rest wait their turn.
 */
const FOLDS_AT_ONCE = 2;
/** Beyond this many waiting, a request is refused at once (429) rather than queued behind minutes of folds. */
const FOLDS_WAITING_MAX = 8;
let running = 0;
const waiting: (() => void)[] = [];

async function inTurn<T>(work: () => Promise<T>, gone: () => boolean): Promise<T> {
  if (running >= FOLDS_AT_ONCE) {
    if (waiting.length >= FOLDS_WAITING_MAX) throw new AgentmeshError("RATE_LIMITED", "Too many state requests are being answered; retry shortly");
    await new Promise<void>((resolve) => waiting.push(resolve));
  }
  running++;
  try {
    // A client that went away while waiting gets nothing: its fold would only delay the others.
    if (gone()) throw new AgentmeshError("BAD_REQUEST", "The client went away before its turn");
    return await work();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/**
 * Each processor's state of a stream right after the event at `at`, folded
 * from the log by the reducers in shared/state: a read of the
 * stream from its start up to `at`, one pass for every processor asked about.
 */
export function streamStateAt(nats: Nats, path: StreamPath, options: { at: number | undefined; processors: readonly ViewedProcessor[]; breakerDefaults: BreakerLimits; gone?: () => boolean }): Promise<StreamStateBody> {
  return inTurn(() => fold(nats, path, options), options.gone ?? (() => false));
}

async function fold(nats: Nats, path: StreamPath, options: { at: number | undefined; processors: readonly ViewedProcessor[]; breakerDefaults: BreakerLimits }): Promise<StreamStateBody> {
  const last = await lastOffset(nats, path, "leader");
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
  const processors: StreamStateBody["processors"] = {};
  for (const [name, { domain, stream }] of folds) processors[name] = { state: domain.present(), stream: stream.present() };
  return { path, at, throughOffset, lastOffset: last, eventsFolded, processors };
}
