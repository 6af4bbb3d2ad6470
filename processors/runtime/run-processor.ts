import { ConfigError } from "../../shared/service/config.js";
import { loadProcessorConfig, type ProcessorConfig } from "./config.js";
import { startHealthServer } from "./health-server.js";
import { collectProcessMetrics, registerLagGauge } from "../../shared/service/metrics.js";
import { createLogger, type Logger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import { StreamIndexes } from "../../shared/log/stream-indexes.js";
import { ProcessorRuntime, type Processor } from "./runtime.js";
import { connectToEvents } from "../../shared/nats/events-stream.js";


export interface RunningProcessor {
  nats: Nats;
  indexes: StreamIndexes;
  runtime: ProcessorRuntime<unknown>;
  healthPort: number;
  logger: Logger;
  stop(): Promise<void>;
}

/**
 * Everything a processor's `main.ts` needs besides its domain logic: config,
 * logger, NATS, the events stream, the pause index, the runtime, health
 * endpoints, and a drain on SIGINT/SIGTERM.
 */
export interface ProcessorDeps {
  config: ProcessorConfig;
  nats: Nats;
  logger: Logger;
  indexes: StreamIndexes;
  /** Register clean-up to run when the processor stops, before NATS is drained. */
  onStop: (cleanup: () => void | Promise<void>) => void;
}

export async function startProcessor<S>(build: (deps: ProcessorDeps) => Processor<S> | Promise<Processor<S>>, name: string, env: NodeJS.ProcessEnv): Promise<RunningProcessor> {
  const config = loadProcessorConfig(env);
  const logger = createLogger(name, config.LOG_LEVEL);
  const nats = await connectToEvents(config, `agentmesh-${name}`, logger);
  const indexes = await StreamIndexes.open(nats, logger, config.EVENTS_REPLICAS);
  const cleanups: (() => void | Promise<void>)[] = [];
  const built = await build({ config, nats, logger, indexes, onStop: (cleanup) => cleanups.push(cleanup) });
  const processor: Processor<S> = {
    ...built,
    ...(config.PROCESSOR_NAME === undefined ? {} : { name: config.PROCESSOR_NAME }),
    ...(config.PROCESSOR_SUBJECT_FILTER === undefined ? {} : { filterSubject: config.PROCESSOR_SUBJECT_FILTER }),
  };
  const runtime = new ProcessorRuntime(processor, {
    nats,
    logger,
    indexes,
    maxDeliver: config.PROCESSOR_MAX_DELIVER,
    ackWaitMs: config.PROCESSOR_ACK_WAIT_MS,
    concurrency: config.PROCESSOR_CONCURRENCY,
  });
  await runtime.start();
  collectProcessMetrics();
  registerLagGauge(processor.name, () => runtime.lag());
  const health = await startHealthServer(config.HEALTH_HOST, config.HEALTH_PORT, { ready: () => runtime.isRunning() });
  logger.info({ consumer: runtime.consumerName, healthPort: health.port }, `${name} processor running`);
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      logger.info(`${name} processor stopping`);
      await runtime.stop();
      for (const cleanup of cleanups) await cleanup();
      indexes.close();
      await health.close();
      await Promise.race([nats.nc.drain().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 3_000).unref())]);
      logger.info(`${name} processor stopped`);
    })();
    return stopped;
  };
  return { nats, indexes, runtime, healthPort: health.port, logger, stop };
}

/** For `processors/<name>/main.ts`: start, exit 2 on bad config, drain on signals. */
export function runProcessorMain<S>(name: string, build: Parameters<typeof startProcessor<S>>[0]): void {
  startProcessor(build, name, process.env)
    .then((running) => {
      for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.on(signal, () => {
          void running.stop().then(() => process.exit(0));
        });
      }
    })
    .catch((err: unknown) => {
      if (err instanceof ConfigError) {
        process.stderr.write(`${name}: ${err.message}\n`);
        process.exit(2);
      }
      process.stderr.write(`${name}: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    });
}
