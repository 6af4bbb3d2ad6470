import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/**
 * The one logger factory: JSON, one line per event. Services add child loggers
 * (request id; stream, offset, type, processor) so one event can be followed.
 */
export function createLogger(service: string, level: LevelWithSilent): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
