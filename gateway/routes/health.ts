import type { FastifyInstance } from "fastify";
import type { StreamReadiness } from "../../shared/nats/stream-readiness.js";

/**
 * `/healthz`: the process answers. `/readyz`: NATS is connected and the events stream has a leader, from the status
 * StreamReadiness keeps (answered at once, whatever JetStream is doing); `stream` tells `no-leader` (an election, a
 * lost quorum: it will pass) from `missing`.
 */
export function registerHealthRoutes(app: FastifyInstance, deps: { readiness: StreamReadiness }): void {
  app.get("/healthz", (_request, reply) => reply.send({ status: "ok" }));
  app.get("/readyz", (_request, reply) => {
    const stream = deps.readiness.current();
    if (stream === "ready") return reply.send({ status: "ready" });
    return reply.code(503).send({ status: "not ready", nats: stream === "disconnected" ? "disconnected" : "connected", stream: stream === "disconnected" ? "unknown" : stream });
  });
}
