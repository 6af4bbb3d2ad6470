import { runProcessorMain } from "../runtime/run-processor.js";
import { LLM_NAME } from "./processor.js";
import { buildLlm } from "./service.js";

runProcessorMain(LLM_NAME, (deps) => buildLlm(deps, process.env));
