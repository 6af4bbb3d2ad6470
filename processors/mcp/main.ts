import { runProcessorMain } from "../runtime/run-processor.js";
import { MCP_NAME } from "./processor.js";
import { buildMcp } from "./service.js";

runProcessorMain(MCP_NAME, (deps) => buildMcp(deps, process.env));
