import { configFields, parseConfig } from "../../shared/service/config.js";

export const breakerConfigShape = {
  BREAKER_MAX_EVENTS_PER_SECOND: configFields.positiveInt.default(100),
  BREAKER_BURST: configFields.positiveInt.default(100),
} as const;

export function loadBreakerConfig(env: NodeJS.ProcessEnv) {
  return parseConfig(breakerConfigShape, env);
}
