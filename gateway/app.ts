import { randomUUID } from "node:crypto";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { AgentmeshError, ensureError } from "../shared/contract/errors.js";
import type { Logger } from "../shared/service/logger.js";
import type { Nats } from "../shared/nats/connection.js";
import { SecretBox } from "../shared/log/secrets.js";
import { ReadCursors } from "./reads/read-cursors.js";
import type { StreamIndexes } from "../shared/log/stream-indexes.js";
import { AccessControl } from "./auth/access.js";
import { TokenVerifier } from "./auth/verifier.js";
import { authEnabled, type GatewayConfig } from "./config.js";
import { collectProcessMetrics, httpDuration, httpRequests } from "../shared/service/metrics.js";
import { errorCodeOf, sendError } from "./http-errors.js";
import { ConnectionLimiter, registerRateLimit } from "./limits.js";
import { registerOpenApi } from "./openapi.js";
import { TailHub } from "./live/tail-hub.js";
import { registerAppendRoute } from "./routes/append.js";
import { registerHealthRoutes } from "./routes/health.js";
import { StreamReadiness } from "../shared/nats/stream-readiness.js";
import { registerMetricsRoute } from "./routes/metrics.js";
import { registerHookRoutes } from "./routes/hooks.js";
import { registerListRoute } from "./routes/list.js";
import { registerProcessorsRoute } from "./routes/processors.js";
import { registerMeRoute } from "./routes/me.js";
import { registerConsoleRoutes } from "./routes/console.js";
import { registerReadRoute } from "./routes/read.js";
import { registerMcpRoutes } from "./mcp/route.js";
import { registerDurableStreamRoutes } from "./durable/routes.js";
import { DurableStreamStore } from "./durable/stream-store.js";
import type { AppendHold } from "../shared/log/append.js";

export interface GatewayDeps {
  config: GatewayConfig;
  nats: Nats;
  indexes: StreamIndexes;
  logger: Logger;
}

/** Three base64url segments, the first a JSON header (`eyJ`): a bearer token, whatever parameter carries it. */
const JWT_SHAPED = /^eyJ[\w-]*\.[\w-]+\.[\w-]*$/;

/** The name of a query parameter as the query parser reads it; null when it cannot be decoded. */
function parameterName(raw: string): string | null {
  try {
    return decodeURIComponent(raw.replaceAll("+", " "));
  } catch {
    return null;
  }
}

/**
 * A URL as logged: a bearer token given as `access_token` never reaches the logs, however its name is
 * percent-encoded (the parser decodes names, so `%61ccess_token` is the same parameter). A name that does not
 * decode is redacted too, rather than guessed at.
 */
function redactedUrl(url: string): string {
  const start = url.indexOf("?");
  if (start === -1) return url;
  const parts = url.slice(start + 1).split("&").map((part) => {
    const equals = part.indexOf("=");
    const rawName = equals === -1 ? part : part.slice(0, equals);
    const name = parameterName(rawName);
    const value = equals === -1 ? "" : part.slice(equals + 1);
    // Any spelling of the name (access_token[], a NUL after it) and anything shaped like a JWT, wherever it is.
    const secret = name === null || name.startsWith("access_token") || JWT_SHAPED.test(parameterName(value) ?? value);
    return equals !== -1 && secret ? `${rawName}=[redacted]` : part;
  });
  return `${url.slice(0, start + 1)}${parts.join("&")}`;
}

/** The HTTP face of the mesh. Testable without listening (`app.inject`) and with it. */
export function buildApp(deps: GatewayDeps): FastifyInstance {
  const { config, nats, indexes, logger } = deps;
  const fastifyLogger: FastifyBaseLogger = logger;
  const app = Fastify({
    loggerInstance: fastifyLogger,
    bodyLimit: config.GATEWAY_BODY_LIMIT_BYTES,
    // A client that trickles its headers or body is cut off (408) instead of holding a socket and a parser forever.
    // Node checks the deadline every connectionsCheckingInterval (30 s by default): check often enough to honour it.
    requestTimeout: config.GATEWAY_REQUEST_TIMEOUT_MS,
    trustProxy: config.GATEWAY_TRUST_PROXY,
    http: {
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(config.GATEWAY_REQUEST_TIMEOUT_MS / 4))),
      headersTimeout: Math.min(60_000, config.GATEWAY_REQUEST_TIMEOUT_MS),
    },
    requestIdHeader: "x-request-id",
    genReqId: () => randomUUID(),
    // One line per request, written in onResponse below, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    // Errors Fastify raises before routing (a malformed URL) get our error body too.
    frameworkErrors: (error, request, reply) => {
      void sendError(request, reply, error);
    },
  });

  collectProcessMetrics();
  app.addHook("onResponse", (request, reply, done) => {
    const route = request.routeOptions.url ?? "unmatched";
    httpRequests.inc({ method: request.method, route, status: reply.statusCode });
    httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    const line = { method: request.method, url: redactedUrl(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100, code: errorCodeOf(request) };
    if (reply.statusCode >= 500) request.log.warn(line, "request");
    else request.log.info(line, "request");
    done();
  });
  app.setErrorHandler((err, request, reply) => sendError(request, reply, ensureError(err)));
  app.setNotFoundHandler((request, reply) => sendError(request, reply, new AgentmeshError("NOT_FOUND", `No route for ${request.method} ${request.url.split("?", 1)[0] ?? ""}`)));

  const verifier = authEnabled(config)
    ? new TokenVerifier({
        ...(config.AUTH_JWT_SECRET === undefined ? {} : { secret: config.AUTH_JWT_SECRET }),
        ...(config.AUTH_JWKS_URL === undefined ? {} : { jwksUrl: config.AUTH_JWKS_URL }),
        ...(config.AUTH_ISSUER === undefined ? {} : { issuer: config.AUTH_ISSUER }),
        ...(config.AUTH_AUDIENCE === undefined ? {} : { audience: config.AUTH_AUDIENCE }),
        maxLifetimeSeconds: config.AUTH_MAX_TOKEN_LIFETIME_S,
      })
    : null;
  const access = new AccessControl(verifier, config.GATEWAY_MAX_BATCH_EVENTS);
  const secrets = config.SECRETS_KEYS === undefined ? null : new SecretBox(config.SECRETS_KEYS);

  const readiness = new StreamReadiness(nats, logger);
  app.addHook("onReady", async () => {
    await readiness.start();
  });
  app.addHook("onClose", (_instance, done) => {
    readiness.stop();
    done();
  });
  const hub = new TailHub(nats, { replayBufferEvents: config.SSE_REPLAY_BUFFER_EVENTS, lingerMs: config.SSE_TAIL_LINGER_MS }, logger);
  const cursors = new ReadCursors(nats);
  // Ending the SSE sessions first lets the server's close complete.
  app.addHook("preClose", (done) => {
    hub.close();
    cursors.closeAll();
    done();
  });

  // One count of live connections per client across both faces.
  const connections = new ConnectionLimiter(access, config.SSE_MAX_CONNECTIONS_PER_CLIENT);

  void registerOpenApi(app);
  void registerRateLimit(app, access, config.RATE_LIMIT_PER_SECOND);
  // Routes go in a plugin registered after the rate limit, so its route hook sees every one of them.
  void app.register((scope, _options, done) => {
    registerHealthRoutes(scope, { readiness });
    registerMetricsRoute(scope);
    registerListRoute(scope, { nats, access, indexes });
    registerProcessorsRoute(scope, { nats, access });
    registerMeRoute(scope, { access });
    registerConsoleRoutes(scope);
    const durableStore = new DurableStreamStore(nats, logger, config.EVENTS_REPLICAS);
    // With the stream on several servers an ack can be lost with its server: events then carry ids of their own, so
    // that sending one again cannot store it twice.
    const hold: AppendHold = { holdMs: config.APPEND_HOLD_MS, ownMessageIds: config.EVENTS_REPLICAS > 1 };
    registerAppendRoute(scope, { nats, indexes, access, secrets, forkMaxEvents: config.FORK_MAX_EVENTS, durableStore, hold });
    registerMcpRoutes(scope, { nats, indexes, access, connections, secrets, hold, logger, askTimeoutMs: config.MCP_ASK_TIMEOUT_MS });
    registerHookRoutes(scope, { nats, indexes, secrets, hold, perStreamPerSecond: config.HOOKS_PER_STREAM_PER_SECOND, perClientPerSecond: config.HOOKS_PER_CLIENT_PER_SECOND, timestampToleranceS: config.HOOKS_TIMESTAMP_TOLERANCE_S });
    registerDurableStreamRoutes(scope, {
      connections,
      nats,
      indexes,
      access,
      secrets,
      authEnabled: access.enabled,
      logger,
      store: durableStore,
      bodyLimitBytes: config.GATEWAY_BODY_LIMIT_BYTES,
      longPollTimeoutMs: config.DURABLE_LONG_POLL_TIMEOUT_MS,
      subscriptions: {
        enabled: config.DURABLE_SUBSCRIPTIONS === "on",
        secretKeys: config.SECRETS_KEYS,
        allowedNetworks: config.DURABLE_WEBHOOK_ALLOWED_NETWORKS,
        publicUrl: config.PUBLIC_URL,
        replicas: config.EVENTS_REPLICAS,
      },
    });
    registerReadRoute(scope, { nats, access, connections, hub, cursors, logger, heartbeatMs: config.SSE_HEARTBEAT_MS, maxBufferedBytes: config.SSE_MAX_BUFFERED_BYTES, breakerDefaults: { maxEventsPerSecond: config.BREAKER_MAX_EVENTS_PER_SECOND, burst: config.BREAKER_BURST } });
    done();
  });
  return app;
}
