import type { FastifyInstance } from "fastify";
import type { Logger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { SecretBox } from "../../shared/log/secrets.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import type { AccessControl } from "../auth/access.js";
import type { ConnectionLimiter } from "../limits.js";
import { DURABLE_PREFIX } from "../stream-url.js";
import { AppendBatcher } from "./append-batch.js";
import { appendToStream } from "./append-stream.js";
import { ChangeSignals } from "./change-signals.js";
import { createStream } from "./create-stream.js";
import type { DurableDeps } from "./protocol-context.js";
import { CorsHeaders, SecurityHeaders } from "./protocol-headers.js";
import { readStream } from "./read-stream.js";
import { deleteStream, headStream } from "./stream-metadata.js";
import type { DurableStreamStore } from "./stream-store.js";
import type { SecretKeys } from "../../shared/log/secrets.js";
import { AddressGuard } from "../../shared/outbound/address-guard.js";
import { SubscriptionDispatcher } from "./subscriptions/dispatcher.js";
import { DS_ROOT, SubscriptionRoutes } from "./subscriptions/routes.js";
import { SubscriptionKeys } from "./subscriptions/signing.js";
import { SubscriptionStore } from "./subscriptions/store.js";
import { WakeSender } from "./subscriptions/webhook-delivery.js";

export interface DurableRouteOptions {
  connections: ConnectionLimiter;
  nats: Nats;
  indexes: StreamIndexes;
  access: AccessControl;
  authEnabled: boolean;
  secrets: SecretBox | null;
  logger: Logger;
  /** The protocol's stream records: shared with the fork route, which must not fork onto one. */
  store: DurableStreamStore;
  bodyLimitBytes: number;
  longPollTimeoutMs: number;
  /** Durable Streams subscriptions (gateway/durable/subscriptions): off unless `enabled`. */
  subscriptions: {
    enabled: boolean;
    /** SECRETS_KEYS: the webhook signing keys and the wake-token key are derived from them. */
    secretKeys: SecretKeys | undefined;
    allowedNetworks: ReadonlySet<string>;
    publicUrl: string | undefined;
    replicas: number;
  };
}

/** How long a webhook wake may take to be answered. */
const WAKE_TIMEOUT_MS = 10_000;

/**
 * The Durable Streams HTTP protocol under /v1/stream/<path>, over the same
 * JetStream stream as the event API (docs/EVENTS.md, "Durable Streams").
 * Bodies are taken as raw bytes whatever their type: the protocol stores
 * any content type, and JSON is parsed only for JSON-mode streams.
 */
export function registerDurableStreamRoutes(app: FastifyInstance, options: DurableRouteOptions): void {
  const signals = new ChangeSignals(options.nats, options.logger);
  const deps: DurableDeps = {
    nats: options.nats,
    indexes: options.indexes,
    access: options.access,
    connections: options.connections,
    authEnabled: options.authEnabled,
    secrets: options.secrets,
    store: options.store,
    signals,
    logger: options.logger,
    longPollTimeoutMs: options.longPollTimeoutMs,
    readMaxBytes: 4 * 1024 * 1024,
  };
  app.addHook("onClose", (_instance, done) => {
    signals.close();
    done();
  });
  // Plain appends to one stream are group-committed (append-batch.ts): the batcher lives as long as the routes.
  const appends = new AppendBatcher();
  const subscriptions = subscriptionRoutes(app, options, deps, appends);

  void app.register((scope, _options, done) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: options.bodyLimitBytes }, (_request, body, parsed) => { parsed(null, body); });
    scope.addHook("onRequest", (_request, reply, next) => {
      void reply.headers({ ...SecurityHeaders, "access-control-allow-origin": CorsHeaders["access-control-allow-origin"], "access-control-expose-headers": CorsHeaders["access-control-expose-headers"] });
      next();
    });
    const url = `${DURABLE_PREFIX}/*`;
    const hidden = { schema: { hide: true } };
    // The protocol's reserved tree: its static prefix wins over `/*`, so no stream can be made under it.
    for (const reserved of [DS_ROOT, `${DS_ROOT}/*`]) {
      scope.route({ method: ["GET", "PUT", "POST", "DELETE", "PATCH"], url: reserved, ...hidden, handler: (request, reply) => subscriptions.handle(request, reply) });
    }
    scope.put(url, hidden, (request, reply) => createStream(deps, request, reply));
    scope.post(url, hidden, (request, reply) => appendToStream(deps, appends, request, reply));
    scope.get(url, { ...hidden, exposeHeadRoute: false }, (request, reply) => readStream(deps, request, reply));
    scope.head(url, hidden, (request, reply) => headStream(deps, request, reply));
    scope.delete(url, hidden, (request, reply) => deleteStream(deps, request, reply));
    scope.options(url, hidden, (_request, reply) => reply.code(204).headers(CorsHeaders).send());
    done();
  });
}

/** The subscriptions' routes, and when they are on, their dispatcher, started with the server and stopped with it. */
function subscriptionRoutes(app: FastifyInstance, options: DurableRouteOptions, deps: DurableDeps, appends: AppendBatcher): SubscriptionRoutes {
  const settings = options.subscriptions;
  const keys = settings.secretKeys === undefined ? null : new SubscriptionKeys(settings.secretKeys);
  const guard = new AddressGuard(settings.allowedNetworks, "DURABLE_WEBHOOK_ALLOWED_NETWORKS");
  const store = new SubscriptionStore(options.nats, options.logger, settings.replicas);
  let dispatcher: SubscriptionDispatcher | null = null;
  if (settings.enabled) {
    const sender = new WakeSender(guard, WAKE_TIMEOUT_MS);
    const running = new SubscriptionDispatcher({ durable: deps, store, keys, sender, appends });
    dispatcher = running;
    app.addHook("onReady", async () => {
      await running.start();
    });
    app.addHook("onClose", async () => {
      running.stop();
      await sender.close();
    });
  }
  return new SubscriptionRoutes({ enabled: settings.enabled, access: options.access, streams: options.store, store, dispatcher, keys, guard, publicUrl: settings.publicUrl });
}
