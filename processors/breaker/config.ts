import { configFields, parseConfig } from "../../shared/service/config.js";
import { DEFAULT_BREAKER_LIMITS } from "../../shared/state/breaker.js";

export const breakerConfigShape = {
  BREAKER_MAX_EVENTS_PER_SECOND: configFields.positiveInt.default(DEFAULT_BREAKER_LIMITS.maxEventsPerSecond),
  BREAKER_BURST: configFields.positiveInt.default(DEFAULT_BREAKER_LIMITS.burst),
} as const;

export function loadBreakerConfig(env: NodeJS.ProcessEnv) {
  return parseConfig(breakerConfigShape, env);
}
