import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Webhook } from "standardwebhooks";
import { appendEvents } from "../../shared/append.js";
import { AgentmeshError } from "../../shared/errors.js";
import type { Nats } from "../../shared/nats.js";
import { openSecret, type SecretBox } from "../../shared/secrets.js";
import type { StreamIndexes } from "../../shared/stream-indexes.js";
import type { StreamPath } from "../../shared/subjects.js";
import type { WebhookReceived } from "../../shared/system-events.js";
import { SystemEventTypes } from "../../shared/wire.js";
import type { Writer } from "../../shared/writer.js";
import { keyedLimit } from "../limits.js";
import { RouteDocs } from "../openapi.js";
import { hookPathFromUrl } from "../stream-url.js";

/** Hop-by-hop headers (RFC 9110 §7.6.1) and credentials: never stored in the log. */
const DROPPED_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "authorization",
  "proxy-authorization",
  "cookie",
  "x-api-key",
  // Senders that authenticate with a shared token in clear (GitLab's X-Gitlab-Token and the like).
  "x-gitlab-token",
  "x-auth-token",
  "x-access-token",
  "api-key",
]);

const utf8 = new TextDecoder("utf-8", { fatal: true });

function isJsonType(contentType: string): boolean {
  return /^application\/(?:[\w.+-]+\+)?json\b/i.test(contentType);
}

function isTextType(contentType: string): boolean {
  return /^text\//i.test(contentType) || /^application\/(?:x-www-form-urlencoded|xml|[\w.+-]+\+xml)\b/i.test(contentType);
}

/** JSON stays JSON, text stays text, anything else (or text that is not UTF-8) becomes base64. */
function representBody(raw: Buffer, contentType: string | null): Pick<WebhookReceived, "bodyEncoding" | "body"> {
  if (raw.length === 0) return { bodyEncoding: "empty", body: null };
  let text: string | undefined;
  try {
    text = utf8.decode(raw);
  } catch {
    return { bodyEncoding: "base64", body: raw.toString("base64") };
  }
  if (contentType !== null && isJsonType(contentType)) {
    try {
      return { bodyEncoding: "json", body: JSON.parse(text) as unknown };
    } catch {
      return { bodyEncoding: "text", body: text };
    }
  }
  if (contentType === null || isTextType(contentType)) return { bodyEncoding: "text", body: text };
  return { bodyEncoding: "base64", body: raw.toString("base64") };
}

function keptHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || DROPPED_HEADERS.has(name)) continue;
    kept[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return kept;
}

/** A sender's `webhook-id` as an idempotency key: printable and bounded, hashed when it is not. */
function dedupeKey(webhookId: string): string {
  const key = `webhook:${webhookId}`;
  return /^[\x20-\x7e]{1,256}$/.test(key) ? key : `webhook:sha256:${createHash("sha256").update(webhookId).digest("hex")}`;
}

/**
 * A third party posting a webhook: it may store `webhook/received` (the only type this route builds, which
 * clients need admin to write) on the stream it names, one event per request, and read nothing back.
 */
const webhookSender: Writer = {
  name: "An inbound webhook",
  maxBatchEvents: 1,
  may: (right) => right !== "read",
};

export interface HookRouteDeps {
  nats: Nats;
  indexes: StreamIndexes;
  secrets: SecretBox | null;
  /** Webhooks admitted per second per stream on this replica; the rest get 429 before anything is stored. */
  perStreamPerSecond: number;
  /** How far `webhook-timestamp` may be from now: kept under half the dedupe window, so a replay is refused. */
  timestampToleranceS: number;
}

/** The stream's inbound secret in clear, or null when it verifies nothing; stored sealed (shared/secrets.ts). */
function inboundSecret(deps: HookRouteDeps, path: StreamPath): string | null {
  const stored = deps.indexes.inboundSecret(path);
  return stored === null ? null : openSecret(deps.secrets, stored, path, SystemEventTypes.inboundConfigured, "secret");
}

function verifySignature(secret: string, raw: Buffer, header: (name: string) => string | undefined, toleranceS: number): void {
  const timestamp = Number(header("webhook-timestamp") ?? "");
  // The library allows five minutes either way; a replay must not outlive the dedupe window, so ours is tighter.
  if (!Number.isInteger(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > toleranceS) {
    throw new AgentmeshError("INVALID_SIGNATURE", `webhook-timestamp must be within ${toleranceS} s of the gateway's clock`);
  }
  try {
    new Webhook(secret).verify(raw, {
      "webhook-id": header("webhook-id") ?? "",
      "webhook-timestamp": header("webhook-timestamp") ?? "",
      "webhook-signature": header("webhook-signature") ?? "",
    });
  } catch (err) {
    throw new AgentmeshError("INVALID_SIGNATURE", `The webhook signature does not verify: ${err instanceof Error ? err.message : "invalid"}`, { cause: err });
  }
}

/**
 * `POST /hooks/<path>`: any third party, any body. Nothing is rejected for its
 * shape: the request is stored as `webhook/received`. Only a stream with a
 * secret (webhook/inbound-configured) checks Standard Webhooks signatures, on
 * the raw bytes. A repeated `webhook-id` is stored once.
 */
export function registerHookRoutes(app: FastifyInstance, deps: HookRouteDeps): void {
  void app.register((scope, _options, done) => {
    const admit = keyedLimit(scope, deps.perStreamPerSecond, (request: FastifyRequest) => `hook:${hookPathFromUrl(request.url)}`);
    // Every content type, kept as raw bytes: signatures are over the exact body, never a re-serialisation.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, parsed) => {
      parsed(null, body);
    });
    scope.post("/hooks/*", { schema: RouteDocs.hooks }, async (request, reply) => {
      const path = hookPathFromUrl(request.url);
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const header = (name: string): string | undefined => {
        const value = request.headers[name];
        return Array.isArray(value) ? value[0] : value;
      };
      const secret = inboundSecret(deps, path);
      // A signed stream counts only verified webhooks against its admission limit, so forged ones cannot
      // crowd out its sender; an unsigned stream counts every one.
      if (secret !== null) verifySignature(secret, raw, header, deps.timestampToleranceS);
      await admit(request);
      const contentType = header("content-type") ?? null;
      const payload: WebhookReceived = { contentType, headers: keptHeaders(request.headers), ...representBody(raw, contentType) };
      const webhookId = header("webhook-id");
      const result = await appendEvents(
        deps.nats,
        path,
        [{ type: SystemEventTypes.webhookReceived, payload, ...(webhookId === undefined || webhookId === "" ? {} : { idempotencyKey: dedupeKey(webhookId) }) }],
        { writer: webhookSender, indexes: deps.indexes },
      );
      const event = result.events[0];
      return reply.code(result.stored > 0 ? 201 : 200).send({ streamPath: path, offset: event?.offset, type: event?.type });
    });
    done();
  });
}
