import { z } from "zod";
import { baseConfigShape, configFields, parseConfig } from "../shared/config.js";

export const gatewayConfigShape = {
  ...baseConfigShape,
  GATEWAY_HOST: z.string().min(1).default("127.0.0.1"),
  GATEWAY_PORT: configFields.port.default(8080),
  /** Largest request body accepted, in bytes (413 above). */
  GATEWAY_BODY_LIMIT_BYTES: configFields.positiveInt.default(1024 * 1024),
  /** SSE comment heartbeat period; keeps proxies from closing idle connections. */
  SSE_HEARTBEAT_MS: configFields.positiveInt.default(15_000),
  /** Recent events each live tail keeps in memory, so resuming clients need no JetStream read. */
  SSE_REPLAY_BUFFER_EVENTS: configFields.positiveInt.default(10_000),
  /** Bytes an SSE client may have unsent before it is cut off (it resumes with Last-Event-ID). */
  SSE_MAX_BUFFERED_BYTES: configFields.positiveInt.default(8 * 1024 * 1024),
  /** How long a live tail with no subscribers lingers before its consumer is stopped. */
  SSE_TAIL_LINGER_MS: z.coerce.number().int().nonnegative().default(30_000),
} as const;

export type GatewayConfig = ReturnType<typeof loadGatewayConfig>;

export function loadGatewayConfig(env: NodeJS.ProcessEnv) {
  return parseConfig(gatewayConfigShape, env);
}
