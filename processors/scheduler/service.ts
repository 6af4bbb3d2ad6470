import type { ProcessorDeps } from "../runtime/run-processor.js";
import type { Processor } from "../runtime/runtime.js";
import type { SchedulesState } from "../../shared/state/schedules.js";
import { SCHEDULER_NAME, schedulerProcessor } from "./processor.js";
import { ScheduleIndex } from "./schedule-index.js";
import { ScheduleTimers } from "./timers.js";
import { eventsSubject, subjectMatches } from "../../shared/contract/subjects.js";

/** Wires the scheduler: the index, the timers fed by its watch, and the processor that fills it. */
export async function buildScheduler(deps: ProcessorDeps, options: { name?: string; filterSubject?: string } = {}): Promise<Processor<SchedulesState>> {
  const { config, nats, logger, indexes, onStop } = deps;
  const name = options.name ?? SCHEDULER_NAME;
  const index = await ScheduleIndex.open(nats, logger, config.EVENTS_REPLICAS);
  const timers = new ScheduleTimers({ nats, index, indexes, logger, processor: name });
  // The index holds every stream's schedules; a scheduler limited to some streams fires only theirs (another
  // deployment, with its own filter, fires the rest).
  const filter = options.filterSubject ?? config.PROCESSOR_SUBJECT_FILTER;
  const stopWatching = await index.watch((key, indexed) => {
    if (filter === undefined || subjectMatches(filter, eventsSubject(indexed.entry.path))) timers.track(key, indexed);
  });
  logger.info({ pending: timers.pending }, "schedules loaded");
  onStop(() => {
    stopWatching();
    timers.stop();
  });
  return { ...schedulerProcessor(index, name), ...(options.filterSubject === undefined ? {} : { filterSubject: options.filterSubject }) };
}
