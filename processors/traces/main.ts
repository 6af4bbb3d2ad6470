import { runProcessorMain } from "../runtime/run-processor.js";
import { TRACES_NAME } from "./processor.js";
import { buildTraces } from "./service.js";

runProcessorMain(TRACES_NAME, (deps) => buildTraces(deps, process.env));
