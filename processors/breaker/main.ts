import { runProcessorMain } from "../runtime/run-processor.js";
import { loadBreakerConfig } from "./config.js";
import { BREAKER_NAME, breakerProcessor } from "./processor.js";

runProcessorMain(BREAKER_NAME, () => {
  const config = loadBreakerConfig(process.env);
  return breakerProcessor({ maxEventsPerSecond: config.BREAKER_MAX_EVENTS_PER_SECOND, burst: config.BREAKER_BURST });
});
