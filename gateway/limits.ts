import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { AgentmeshError } from "../shared/contract/errors.js";
import type { AccessControl } from "./auth/access.js";

/**
 * Who a client is, for limits: the subject of its verified token, else its IP
 * address. Keying on the header as sent would let `bearer` vs `Bearer`, extra
 * spaces or any junk token count as a new client; verification is cached per
 * token (gateway/auth/verifier.ts), so this costs a map lookup per request.
 */
export async function clientKey(access: AccessControl, request: FastifyRequest): Promise<string> {
  if (access.enabled) {
    const subject = await access.principal(request).then(
      (principal) => principal.subject,
      () => null,
    );
    if (subject !== null) return `sub:${subject}`;
  }
  return `ip:${request.ip}`;
}

const UNLIMITED_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

function rateLimited(max: number, ttlMs: number): AgentmeshError {
  return new AgentmeshError("RATE_LIMITED", `At most ${max} requests per second; retry in ${Math.ceil(ttlMs / 1000)} s`, {
    headers: { "retry-after": String(Math.max(1, Math.ceil(ttlMs / 1000))) },
  });
}

/**
 * Requests per second per client (0: no per-client limit); 429 RATE_LIMITED with Retry-After above it.
 * The plugin is registered either way: routes make limiters of their own with `app.createRateLimit`.
 */
export async function registerRateLimit(app: FastifyInstance, access: AccessControl, perSecond: number): Promise<void> {
  await app.register(rateLimit, {
    global: perSecond > 0,
    max: Math.max(perSecond, 1),
    timeWindow: 1000,
    keyGenerator: (request) => clientKey(access, request),
    allowList: (request) => UNLIMITED_PATHS.has(request.url.split("?", 1)[0] ?? ""),
    errorResponseBuilder: (_request, context) => rateLimited(context.max, context.ttl),
  });
}

/** A limiter of `max` requests per second per key, for a route to check where it chooses. */
export function keyedLimit(app: FastifyInstance, max: number, key: (request: FastifyRequest) => string): (request: FastifyRequest) => Promise<void> {
  const check = app.createRateLimit({ max, timeWindow: 1000, keyGenerator: key });
  return async (request) => {
    const limit = await check(request);
    if (!limit.isAllowed && limit.isExceeded) throw rateLimited(limit.max, limit.ttl);
  };
}

/** Live SSE connections per client: a leak or a runaway client cannot hold the gateway's sockets. */
export class ConnectionLimiter {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly access: AccessControl,
    private readonly perClient: number,
  ) {}

  /** Count a new connection, or refuse it; call the returned release when it closes. */
  async acquire(request: FastifyRequest): Promise<() => void> {
    if (this.perClient === 0) return () => undefined;
    const key = await clientKey(this.access, request);
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
