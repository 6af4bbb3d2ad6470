import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { inject } from "vitest";
import { buildApp } from "../../gateway/app.js";
import { loadGatewayConfig } from "../../gateway/config.js";
import { createLogger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import { connectToEvents } from "../../shared/nats/events-stream.js";
import { StreamIndexes } from "../../shared/log/stream-indexes.js";

export interface TestGateway {
  url: string;
  port: number;
  app: FastifyInstance;
  nats: Nats;
  /** Every route the gateway serves, as `METHOD url` (HEAD routes Fastify adds for GETs included). */
  routes: string[];
  close(): Promise<void>;
}

/**
 * A real gateway listening on loopback, connected to the test run's real
 * nats-server. `env` overrides configuration as the environment would.
 */
export async function startGateway(env: Record<string, string> = {}, port = 0): Promise<TestGateway> {
  const config = loadGatewayConfig({ NATS_URL: inject("natsUrl"), LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "error", GATEWAY_PORT: String(port), AUTH: "off", SECRETS_KEYS: TEST_SECRETS_KEYS, ...env });
  const logger = createLogger("gateway-test", config.LOG_LEVEL);
  const nats = await connectToEvents(config, "gateway-test", logger);
  const indexes = await StreamIndexes.open(nats, logger, config.EVENTS_REPLICAS);
  const app = buildApp({ config, nats, indexes, logger });
  const routes: string[] = [];
  // Routes are registered by plugins that load at listen, so this sees every one of them.
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) routes.push(`${method} ${route.url}`);
  });
  await app.listen({ host: "127.0.0.1", port: config.GATEWAY_PORT });
  const address = app.server.address();
  const actualPort = typeof address === "object" && address !== null ? address.port : config.GATEWAY_PORT;
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    app,
    nats,
    routes,
    close: async () => {
      await app.close();
      indexes.close();
      await nats.nc.close();
    },
  };
}

/** The sealing key every test service shares (shared/log/secrets.ts), as one deployment's services would. */
export const TEST_SECRETS_KEYS = `test:${Buffer.alloc(32, 7).toString("base64")}`;

/** A stream path no other test uses. */
export function uniquePath(prefix = "t"): string {
  return `/${prefix}-${randomBytes(6).toString("hex")}`;
}

export interface JsonReply<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

export async function request<T = unknown>(url: string, init: { method?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}): Promise<JsonReply<T>> {
  const headers: Record<string, string> = { ...init.headers };
  let body: string | undefined;
  if (init.rawBody !== undefined) body = init.rawBody;
  else if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers["content-type"] ??= "application/json";
  }
  const response = await fetch(url, { method: init.method ?? (body === undefined ? "GET" : "POST"), headers, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  return { status: response.status, body: (text === "" ? undefined : JSON.parse(text)) as T, headers: response.headers };
}
