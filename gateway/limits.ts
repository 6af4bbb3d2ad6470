import { createHash } from "node:crypto";
import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { AgentmeshError } from "../shared/errors.js";

/**
 * Who a client is, for limits: its bearer token (hashed, never kept in clear)
 * when it sends one, else its IP address. Verifying the token here would cost
 * a signature check per request before the limit could refuse anything.
 */
export function clientKey(request: FastifyRequest): string {
  const query = request.query as Record<string, unknown> | undefined;
  const token = request.headers.authorization ?? (typeof query?.access_token === "string" ? query.access_token : undefined);
  if (token !== undefined) return `token:${createHash("sha256").update(token).digest("hex").slice(0, 32)}`;
  return `ip:${request.ip}`;
}

const UNLIMITED_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

/** Requests per second per client; 429 RATE_LIMITED with Retry-After above it. */
export async function registerRateLimit(app: FastifyInstance, perSecond: number): Promise<void> {
  if (perSecond === 0) return;
  await app.register(rateLimit, {
    max: perSecond,
    timeWindow: 1000,
    keyGenerator: clientKey,
    allowList: (request) => UNLIMITED_PATHS.has(request.url.split("?", 1)[0] ?? ""),
    errorResponseBuilder: (_request, context) =>
      new AgentmeshError("RATE_LIMITED", `At most ${context.max} requests per second per client; retry in ${Math.ceil(context.ttl / 1000)} s`),
  });
}

/** Live SSE connections per client: a leak or a runaway client cannot hold the gateway's sockets. */
export class ConnectionLimiter {
  private readonly open = new Map<string, number>();

  constructor(private readonly perClient: number) {}

  /** Count a new connection, or refuse it; call the returned release when it closes. */
  acquire(request: FastifyRequest): () => void {
    if (this.perClient === 0) return () => undefined;
    const key = clientKey(request);
    const count = this.open.get(key) ?? 0;
    if (count >= this.perClient) throw new AgentmeshError("TOO_MANY_CONNECTIONS", `At most ${this.perClient} live connections per client`);
    this.open.set(key, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left === 0) this.open.delete(key);
      else this.open.set(key, left);
    };
  }
}
