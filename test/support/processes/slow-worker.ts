/**
 * A processor run as its own OS process by the crash tests: it reacts to
 * `job/requested` with `job/done` after SLOW_WORKER_DELAY_MS, and says on stdout
 * when it starts reacting, so a test can kill it mid-event.
 */
import { runProcessorMain } from "../../../processors/runtime/run-processor.js";

const name = process.env.SLOW_WORKER_NAME ?? "slow-worker";
const delayMs = Number(process.env.SLOW_WORKER_DELAY_MS ?? "1000");
const filterSubject = process.env.SLOW_WORKER_FILTER;
// Its reaction depends on the triggering event alone, so it may skip serialising decisions on the log.
const serialiseDecisions = process.env.SLOW_WORKER_SERIALISE !== "false";

runProcessorMain(name, () => ({
  name,
  triggers: ["job/requested"],
  serialiseDecisions,
  ...(filterSubject === undefined ? {} : { filterSubject }),
  initialState: () => null,
  reduce: () => null,
  react: async ({ event }) => {
    process.stdout.write(`REACTING ${event.offset}\n`);
    // No timer at 0: even setTimeout(0) waits about a millisecond, which the hop benchmark would count.
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    return [{ type: "job/done", payload: { for: event.offset } }];
  },
}));
