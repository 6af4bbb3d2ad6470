/**
 * A processor run as its own OS process by the rewind tests: it answers `job/requested` with `job/done`, except
 * jobs marked `{"tricky": true}`, which it "cannot handle" (answers nothing) until the file REWIND_WORKER_FIXED_FILE
 * exists: the fix a rewind is for. It says on stdout which events reach its `react`.
 */
import { existsSync } from "node:fs";
import { runProcessorMain } from "../../../processors/runtime/run-processor.js";

const name = process.env.REWIND_WORKER_NAME ?? "rewind-worker";
const filterSubject = process.env.REWIND_WORKER_FILTER;
const fixedFile = process.env.REWIND_WORKER_FIXED_FILE ?? "";

runProcessorMain(name, () => ({
  name,
  triggers: ["job/requested"],
  ...(filterSubject === undefined ? {} : { filterSubject }),
  initialState: () => null,
  reduce: () => null,
  react: ({ event }) => {
    process.stdout.write(`REACTING ${event.offset}\n`);
    const tricky = (event.payload as { tricky?: unknown } | null)?.tricky === true;
    // Checked per event, so a running replica picks the fix up without a restart.
    if (tricky && !existsSync(fixedFile)) return [];
    return [{ type: "job/done", payload: { for: event.offset } }];
  },
}));
