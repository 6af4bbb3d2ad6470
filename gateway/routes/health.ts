import type { FastifyInstance } from "fastify";
import type { Nats } from "../../shared/nats/connection.js";

/** `/healthz`: the process answers. `/readyz`: NATS is connected and the events stream exists. */
export function registerHealthRoutes(app: FastifyInstance, deps: { nats: Nats }): void {
  app.get("/healthz", (_request, reply) => reply.send({ status: "ok" }));
  app.get("/readyz", async (_request, reply) => {
    const connected = deps.nats.isConnected();
    const streamReady = connected && (await deps.nats.jsm.streams.info(deps.nats.streamName).then(() => true, () => false));
    if (connected && streamReady) return { status: "ready" };
    return reply.code(503).send({ status: "not ready", nats: connected ? "connected" : "disconnected", stream: streamReady ? "ready" : "missing" });
  });
}
