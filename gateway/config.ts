import { z } from "zod";
import { baseConfigShape, ConfigError, configFields, parseConfig } from "../shared/service/config.js";
import { DEFAULT_BREAKER_LIMITS } from "../shared/state/breaker.js";
import { SecretKeysSchema } from "../shared/log/secrets.js";

export const gatewayConfigShape = {
  ...baseConfigShape,
  GATEWAY_HOST: z.string().min(1).default("127.0.0.1"),
  GATEWAY_PORT: configFields.port.default(8080),
  /** Largest request body accepted, in bytes (413 above). */
  GATEWAY_BODY_LIMIT_BYTES: configFields.positiveInt.default(1024 * 1024),
  /** SSE comment heartbeat period; keeps proxies from closing idle connections. */
  /** The breaker's default limits, as the breaker processor is given them: the state API (`/state`) folds with them. */
  BREAKER_MAX_EVENTS_PER_SECOND: configFields.positiveInt.default(DEFAULT_BREAKER_LIMITS.maxEventsPerSecond),
  BREAKER_BURST: configFields.positiveInt.default(DEFAULT_BREAKER_LIMITS.burst),
  SSE_HEARTBEAT_MS: configFields.positiveInt.default(15_000),
  /** Recent events each live tail keeps in memory, so resuming clients need no JetStream read. */
  SSE_REPLAY_BUFFER_EVENTS: configFields.positiveInt.default(10_000),
  /** Bytes an SSE client may have unsent before it is cut off (it resumes with Last-Event-ID). */
  SSE_MAX_BUFFERED_BYTES: configFields.positiveInt.default(8 * 1024 * 1024),
  /** How long the MCP face's `ask` waits for the agent's answer when the call does not say (gateway/mcp/ask.ts). */
  MCP_ASK_TIMEOUT_MS: configFields.positiveInt.default(120_000),
  /**
   * How long an append holds and retries a publish JetStream could not take (a leader election, a lost server)
   * before answering 503: the client sees latency, not an error (docs/ARCHITECTURE.md, "Failure behaviour").
   */
  APPEND_HOLD_MS: z.coerce.number().int().nonnegative().default(10_000),
  /** The longest stream a fork copies (POST /streams/<path>/fork): one request's work and storage. */
  FORK_MAX_EVENTS: configFields.positiveInt.default(1_000_000),
  /** How long a live tail with no subscribers lingers before its consumer is stopped. */
  SSE_TAIL_LINGER_MS: z.coerce.number().int().nonnegative().default(30_000),
  /** Events in one append request (400 BATCH_TOO_LARGE above). */
  GATEWAY_MAX_BATCH_EVENTS: configFields.positiveInt.default(1000),
  /** Durable Streams protocol: how long a long-poll waits for data before answering 204; also the SSE keep-alive period. */
  DURABLE_LONG_POLL_TIMEOUT_MS: configFields.positiveInt.default(20_000),
  /** Durable Streams subscriptions (webhook and pull-wake, under /v1/stream/__ds/): `on` or `off`. */
  DURABLE_SUBSCRIPTIONS: z.enum(["on", "off"]).default("off"),
  /** ipaddr.js range names a subscription's webhook URL may reach besides the public internet (e.g. `loopback,private`). */
  DURABLE_WEBHOOK_ALLOWED_NETWORKS: z
    .string()
    .default("")
    .transform((value) => new Set(value.split(",").map((part) => part.trim()).filter((part) => part !== ""))),
  /** The gateway's public base URL (`https://mesh.example.com`): callback and JWKS URLs in webhooks. Default: the request's origin. */
  PUBLIC_URL: z.url().optional(),
  /** Requests per second per client (token subject, else IP); 0 turns the limit off. */
  RATE_LIMIT_PER_SECOND: z.coerce.number().int().nonnegative().default(0),
  /** Live SSE connections per client (token subject, else IP); 0 turns the limit off. */
  SSE_MAX_CONNECTIONS_PER_CLIENT: z.coerce.number().int().nonnegative().default(0),
  /** `jwt` (bearer tokens required) or `off` (local use only). Required unless a secret or JWKS URL is set. */
  AUTH: z.enum(["jwt", "off"]).optional(),
  AUTH_JWT_SECRET: z.string().min(32, "at least 32 characters").optional(),
  AUTH_JWKS_URL: z.url().optional(),
  AUTH_ISSUER: z.string().optional(),
  AUTH_AUDIENCE: z.string().optional(),
  /** Longest lifetime a bearer token may have (exp - iat), in seconds; longer ones are refused. */
  AUTH_MAX_TOKEN_LIFETIME_S: configFields.positiveInt.default(24 * 3600),
  /** Keys that seal the credentials events carry (shared/log/secrets.ts): `id:base64key[,...]`, the first seals. */
  SECRETS_KEYS: SecretKeysSchema.optional(),
  /** How long a client may take to send a whole request (headers and body); slower ones are cut off with 408. */
  GATEWAY_REQUEST_TIMEOUT_MS: configFields.positiveInt.default(30_000),
  /** Inbound webhooks per second per stream, on each gateway replica (429 above it). */
  HOOKS_PER_STREAM_PER_SECOND: configFields.positiveInt.default(20),
  /** Inbound webhooks per second per client address, on each gateway replica (429 above it). */
  HOOKS_PER_CLIENT_PER_SECOND: configFields.positiveInt.default(50),
  /**
   * Behind a proxy (an ingress), the proxies whose X-Forwarded-For names the client: their addresses or CIDRs,
   * comma-separated, or `true` for any. Without it every client behind the proxy shares the proxy's address, and
   * with it the per-address limits.
   */
  GATEWAY_TRUST_PROXY: z
    .string()
    .optional()
    .transform((value): string | boolean => (value === undefined || value === "" || value === "false" ? false : value === "true" ? true : value)),
  /** How far a signed webhook's timestamp may be from now, in seconds; below half the dedupe window, so a replay is either a duplicate or too old. */
  HOOKS_TIMESTAMP_TOLERANCE_S: configFields.positiveInt.default(50),
} as const;

export type GatewayConfig = ReturnType<typeof loadGatewayConfig>;

export function loadGatewayConfig(env: NodeJS.ProcessEnv) {
  const config = parseConfig(gatewayConfigShape, env);
  const keyed = config.AUTH_JWT_SECRET !== undefined || config.AUTH_JWKS_URL !== undefined;
  if (config.AUTH === undefined && !keyed) {
    throw new ConfigError(["AUTH: set AUTH_JWT_SECRET or AUTH_JWKS_URL for bearer tokens, or AUTH=off explicitly for local use"]);
  }
  if (config.AUTH === "jwt" && !keyed) throw new ConfigError(["AUTH=jwt needs AUTH_JWT_SECRET or AUTH_JWKS_URL"]);
  if (config.HOOKS_TIMESTAMP_TOLERANCE_S * 1000 * 2 > config.EVENTS_DUPLICATE_WINDOW_MS) {
    throw new ConfigError([`HOOKS_TIMESTAMP_TOLERANCE_S: at most half of EVENTS_DUPLICATE_WINDOW_MS (${config.EVENTS_DUPLICATE_WINDOW_MS / 2000} s), or a replayed webhook could outlive its dedupe`]);
  }
  return config;
}

/** Whether bearer tokens are checked. */
export function authEnabled(config: GatewayConfig): boolean {
  return config.AUTH !== "off";
}
