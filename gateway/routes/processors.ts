import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { Nats } from "../../shared/nats/connection.js";
import type { AccessControl } from "../auth/access.js";
import { listProcessorConsumers } from "../reads/processor-consumers.js";
import { rewindProcessor } from "../admin/processor-rewind.js";
import { RouteDocs } from "../openapi.js";
import { parseOr } from "../validation.js";

const RewindBodySchema = z.strictObject({ to: z.union([z.number(), z.string()]) });

/**
 * `GET /processors`: every processor's consumer (pending, redelivered, ack floor, replicas pulling).
 * `POST /processors/<name>/rewind`: move a processor's consumer back (docs/ARCHITECTURE.md, "Rewinding a processor").
 * Both need `admin` on `/**`: a processor reads every stream.
 */
export function registerProcessorsRoute(app: FastifyInstance, deps: { nats: Nats; access: AccessControl }): void {
  app.get("/processors", { schema: RouteDocs.processors }, async (request) => {
    await deps.access.require(request, "admin", { kind: "subtree", prefix: null });
    return { processors: await listProcessorConsumers(deps.nats) };
  });

  app.post<{ Params: { name: string } }>("/processors/:name/rewind", { schema: RouteDocs.rewindProcessor }, async (request) => {
    await deps.access.require(request, "admin", { kind: "subtree", prefix: null });
    const { to } = parseOr(RewindBodySchema, request.body ?? {}, "INVALID_REWIND_TARGET", "");
    const rewound = await rewindProcessor(deps.nats, request.params.name, to);
    const { subject } = await deps.access.principal(request);
    // The one line an operator looks for afterwards: who moved which processor back, from where to where.
    request.log.info({ processor: rewound.processor, by: subject, to, start: rewound.start, before: rewound.before, pending: rewound.pending, attempts: rewound.attempts }, "processor rewound");
    return rewound;
  });
}
