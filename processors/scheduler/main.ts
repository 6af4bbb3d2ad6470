import { runProcessorMain } from "../runtime/run-processor.js";
import { SCHEDULER_NAME } from "./processor.js";
import { buildScheduler } from "./service.js";

runProcessorMain(SCHEDULER_NAME, (deps) => buildScheduler(deps));
