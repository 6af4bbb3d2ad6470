import { SignJWT } from "jose";
import { inject } from "vitest";
import { buildApp } from "../../gateway/app.js";
import { loadGatewayConfig } from "../../gateway/config.js";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { createLogger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import { connectToEvents } from "../../shared/nats/events-stream.js";
import { StreamIndexes } from "../../shared/log/stream-indexes.js";
import { request, type JsonReply } from "./gateway.js";
import { waitFor } from "./processors.js";

/** The HS256 secret of the security tests' AUTH=jwt gateways. */
export const JWT_SECRET = "security-tests-secret-of-more-than-32-chars";

export interface Grant {
  path: string;
  rights: ("read" | "append" | "admin")[];
}

export interface TokenOptions {
  subject?: string;
  /** Seconds from now; null: no `exp` at all. Default 300. */
  expiresInS?: number | null;
  /** Seconds from now for `iat`; null: no `iat`. Default 0 (now). */
  issuedAtS?: number | null;
  key?: string;
}

/** A bearer token as a client would hold it, signed with JWT_SECRET unless told otherwise. */
export async function mintToken(grants: Grant[], options: TokenOptions = {}): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ streams: grants }).setProtectedHeader({ alg: "HS256" }).setSubject(options.subject ?? "security-test");
  const iat = options.issuedAtS === undefined ? 0 : options.issuedAtS;
  if (iat !== null) jwt = jwt.setIssuedAt(nowS + iat);
  const exp = options.expiresInS === undefined ? 300 : options.expiresInS;
  if (exp !== null) jwt = jwt.setExpirationTime(nowS + exp);
  return jwt.sign(new TextEncoder().encode(options.key ?? JWT_SECRET));
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

export function errorCode(reply: { body: unknown }): string | undefined {
  const body = reply.body as { error?: { code?: string } } | undefined;
  return body?.error?.code;
}

/** Every event of a stream, read with a token (or none, on an AUTH=off gateway). */
export async function readAllAs(baseUrl: string, path: string, token?: string): Promise<EventEnvelope[]> {
  const events: EventEnvelope[] = [];
  let after = 0;
  for (;;) {
    const page: JsonReply<{ events: EventEnvelope[]; nextOffset: number; upToDate: boolean }> = await request(`${baseUrl}/streams${path}?after=${after}&limit=1000`, token === undefined ? {} : { headers: bearer(token) });
    if (page.status === 404) return events;
    if (page.status !== 200) throw new Error(`read ${path}: ${page.status} ${JSON.stringify(page.body)}`);
    events.push(...page.body.events);
    after = page.body.nextOffset;
    if (page.body.upToDate) return events;
  }
}

/** Wait until a durable consumer has nothing left to deliver and nothing unacknowledged. */
export function waitForConsumerIdle(nats: Nats, consumer: string, timeoutMs = 20_000): Promise<true> {
  return waitFor(
    async () => {
      const info = await nats.jsm.consumers.info(nats.streamName, consumer);
      return info.num_pending === 0 && info.num_ack_pending === 0 ? (true as const) : undefined;
    },
    timeoutMs,
    `${consumer} idle`,
  );
}

export interface BareGateway {
  url: string;
  close(): Promise<void>;
}

/**
 * A gateway from exactly this environment (plus the run's NATS_URL and a free port): unlike
 * test/support/gateway.ts's startGateway, nothing is added, so a variable such as SECRETS_KEYS can be absent.
 */
export async function startGatewayFromEnv(env: NodeJS.ProcessEnv): Promise<BareGateway> {
  const config = loadGatewayConfig({ NATS_URL: inject("natsUrl"), LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "error", GATEWAY_PORT: "0", ...env });
  const logger = createLogger("gateway-test", config.LOG_LEVEL);
  const nats = await connectToEvents(config, "gateway-test", logger);
  const indexes = await StreamIndexes.open(nats, logger, config.EVENTS_REPLICAS);
  const app = buildApp({ config, nats, indexes, logger });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await app.close();
      indexes.close();
      await nats.nc.close();
    },
  };
}
