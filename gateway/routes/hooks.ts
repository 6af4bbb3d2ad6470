import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Webhook } from "standardwebhooks";
import { appendEvents, type AppendHold } from "../../shared/log/append.js";
import { AgentmeshError } from "../../shared/contract/errors.js";
import type { Nats } from "../../shared/nats/connection.js";
import { openSecret, type SecretBox } from "../../shared/log/secrets.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import type { WebhookReceived } from "../../shared/contract/events/stream.js";
import { SystemEventTypes } from "../../shared/contract/wire.js";
import type { Writer } from "../../shared/log/writer.js";
import { keyedLimit } from "../limits.js";
import { RouteDocs } from "../openapi.js";
import { hookPathFromUrl } from "../stream-url.js";

/** Hop-by-hop headers (RFC 9110 §7.6.1) and the transport's own: never stored in the log. */
const DROPPED_HEADERS: ReadonlySet<string> = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"]);

/**
 * Headers that may carry a credential: never stored. Senders authenticate in many ways (Authorization, cookies,
 * X-Gitlab-Token, X-Telegram-Bot-Api-Secret-Token, Private-Token, ...), so the names are matched by what they
 * say, not listed. Signatures go too: stored, a reader could replay the request they sign.
 */
const CREDENTIAL_HEADER = /auth|token|secret|key|signature|password|passwd|cookie|session|credential/i;

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
    if (value === undefined || DROPPED_HEADERS.has(name) || CREDENTIAL_HEADER.test(name)) continue;
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
  keyScope: "hook",
  // Safe only because this route builds the one event it appends, webhook/received (admin-only for clients).
  may: (right) => right !== "read",
};

export interface HookRouteDeps {
  nats: Nats;
  indexes: StreamIndexes;
  secrets: SecretBox | null;
  /** Held through a leader election like any append. */
  hold: AppendHold;
  /** Webhooks admitted per second per stream on this replica; the rest get 429 before anything is stored. */
  perStreamPerSecond: number;
  /** Webhooks admitted per second per client address on this replica, whatever the stream. */
  perClientPerSecond: number;
  /** How far `webhook-timestamp` may be from now: kept under half the dedupe window, so a replay is refused. */
  timestampToleranceS: number;
}

/**
 * The stream's inbound webhook endpoint: its secret in clear, or null when it takes unsigned webhooks. A stream
 * accepts webhooks only once an admin configured it (webhook/inbound-configured): otherwise anyone could write
 * into any path, or take a path before its owner creates it.
 */
function inboundEndpoint(deps: HookRouteDeps, path: StreamPath): { secret: string | null } {
  const configured = deps.indexes.inboundConfig(path);
  if (configured === undefined) throw new AgentmeshError("NOT_FOUND", `No inbound webhook endpoint at ${path}: an admin opens one with ${SystemEventTypes.inboundConfigured}`);
  return { secret: configured.secret === null ? null : openSecret(deps.secrets, configured.secret, path, SystemEventTypes.inboundConfigured, "secret") };
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
    // Whatever paths it posts to, one sender's cost is bounded too.
    const admitClient = keyedLimit(scope, deps.perClientPerSecond, (request: FastifyRequest) => `hook-client:${request.ip}`);
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
      await admitClient(request);
      const { secret } = inboundEndpoint(deps, path);
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
        { writer: webhookSender, indexes: deps.indexes, ...deps.hold },
      ).catch((err: unknown) => {
        // A third party learns that the stream takes nothing now, not why or since when.
        if (err instanceof AgentmeshError && err.code === "STREAM_PAUSED") throw new AgentmeshError("STREAM_PAUSED", "The stream takes no webhooks now; retry later");
        throw err;
      });
      const event = result.events[0];
      return reply.code(result.stored > 0 ? 201 : 200).send({ streamPath: path, offset: event?.offset, type: event?.type });
    });
    done();
  });
}
