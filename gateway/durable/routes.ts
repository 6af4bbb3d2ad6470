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
}

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

  void app.register((scope, _options, done) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: options.bodyLimitBytes }, (_request, body, parsed) => { parsed(null, body); });
    scope.addHook("onRequest", (_request, reply, next) => {
      void reply.headers({ ...SecurityHeaders, "access-control-allow-origin": CorsHeaders["access-control-allow-origin"], "access-control-expose-headers": CorsHeaders["access-control-expose-headers"] });
      next();
    });
    const url = `${DURABLE_PREFIX}/*`;
    const hidden = { schema: { hide: true } };
    scope.put(url, hidden, (request, reply) => createStream(deps, request, reply));
    // Plain appends to one stream are group-committed (append-batch.ts): the batcher lives as long as the routes.
    const appends = new AppendBatcher();
    scope.post(url, hidden, (request, reply) => appendToStream(deps, appends, request, reply));
    scope.get(url, { ...hidden, exposeHeadRoute: false }, (request, reply) => readStream(deps, request, reply));
    scope.head(url, hidden, (request, reply) => headStream(deps, request, reply));
    scope.delete(url, hidden, (request, reply) => deleteStream(deps, request, reply));
    scope.options(url, hidden, (_request, reply) => reply.code(204).headers(CorsHeaders).send());
    done();
  });
}
