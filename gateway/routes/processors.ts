import type { FastifyInstance } from "fastify";
import type { Nats } from "../../shared/nats/connection.js";
import type { AccessControl } from "../auth/access.js";
import { listProcessorConsumers } from "../reads/processor-consumers.js";
import { RouteDocs } from "../openapi.js";

/** `GET /processors`: every processor's consumer (pending, redelivered, ack floor, replicas pulling). Needs `admin` on `/**`. */
export function registerProcessorsRoute(app: FastifyInstance, deps: { nats: Nats; access: AccessControl }): void {
  app.get("/processors", { schema: RouteDocs.processors }, async (request) => {
    await deps.access.require(request, "admin", { kind: "subtree", prefix: null });
    return { processors: await listProcessorConsumers(deps.nats) };
  });
}
