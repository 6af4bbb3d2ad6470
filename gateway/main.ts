import { ConfigError } from "../shared/service/config.js";
import { createLogger } from "../shared/service/logger.js";
import { connectToEvents } from "../shared/nats/events-stream.js";
import { StreamIndexes } from "../shared/log/stream-indexes.js";
import { buildApp } from "./app.js";
import { loadGatewayConfig } from "./config.js";

/** Gateway process: read config, connect, make sure the stream exists, listen; drain on SIGINT/SIGTERM. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadGatewayConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gateway: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger("gateway", config.LOG_LEVEL);
  if (config.AUTH === "off") {
    logger.warn("AUTH=off: every request is allowed without a token. Use this on your own machine only, never where the gateway is reachable by others.");
  }
  const nats = await connectToEvents(config, "agentmesh-gateway", logger);
  const indexes = await StreamIndexes.open(nats, logger, config.EVENTS_REPLICAS);
  const app = buildApp({ config, nats, indexes, logger });
  const address = await app.listen({ host: config.GATEWAY_HOST, port: config.GATEWAY_PORT });
  logger.info({ address }, "gateway listening");

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "gateway stopping");
    await app.close();
    indexes.close();
    // Drain flushes what is in flight; bounded, because with NATS gone it would wait forever.
    await Promise.race([nats.nc.drain().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 3_000).unref())]);
    logger.info("gateway stopped");
    process.exit(0);
  };
  process.on("SIGINT", (signal) => void stop(signal));
  process.on("SIGTERM", (signal) => void stop(signal));
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
