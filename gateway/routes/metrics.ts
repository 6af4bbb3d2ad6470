import type { FastifyInstance } from "fastify";
import { metricsRegistry } from "../../shared/service/metrics.js";

/** `GET /metrics`: Prometheus text format. */
export function registerMetricsRoute(app: FastifyInstance): void {
  app.get("/metrics", async (_request, reply) => reply.type(metricsRegistry.contentType).send(await metricsRegistry.metrics()));
}
