import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { parseStreamPath, type StreamPath } from "../../shared/contract/subjects.js";
import type { DurableStreamStore } from "../durable/stream-store.js";
import { forkStream, type ForkResult } from "../../shared/log/fork.js";
import type { SecretBox } from "../../shared/log/secrets.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import { requireRight } from "../../shared/log/writer.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { AccessControl } from "../auth/access.js";
import { parseOr } from "../validation.js";

const ForkBodySchema = z
  .object({
    at: z.number().int().positive(),
    to: z.string().transform((raw, ctx) => {
      try {
        return parseStreamPath(raw);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: err instanceof Error ? err.message : "not a stream path" });
        return z.NEVER;
      }
    }),
    subscriptions: z.boolean().default(false),
  })
  .strict();

export interface ForkDeps {
  nats: Nats;
  access: AccessControl;
  indexes: StreamIndexes;
  secrets: SecretBox | null;
  forkMaxEvents: number;
  /** The Durable Streams face's records: a path that holds one is taken, events or not. */
  durableStore: DurableStreamStore;
}

/**
 * `POST /streams/<path>/fork` `{at, to, subscriptions?}`: a new stream whose history is this one's up to and
 * including `at` (docs/ARCHITECTURE.md, "Forks"). Needs `read` here and `append` on `to`, and `admin` on both to
 * inherit webhook subscriptions (they deliver, signed, whatever the fork's writers append). The append route hands
 * these URLs here (a path cannot end in `fork`).
 */
export async function answerForkRequest(request: FastifyRequest, path: StreamPath, deps: ForkDeps): Promise<ForkResult> {
  await deps.access.require(request, "read", { kind: "stream", path });
  const body = parseOr(ForkBodySchema, request.body ?? {}, "BAD_REQUEST", "");
  const writer = await deps.access.writer(request);
  requireRight(writer, "append", body.to);
  // The source's subscriptions would deliver, signed with its secrets, to its receivers whatever is appended to the
  // fork: its admin's to give, and the fork's admin's to take.
  if (body.subscriptions) {
    requireRight(writer, "admin", path);
    requireRight(writer, "admin", body.to);
  }
  const taken = await deps.durableStore.lookup(body.to);
  if (taken.kind === "durable" || taken.kind === "gone") throw new AgentmeshError("STREAM_EXISTS", `A Durable Stream was created at ${body.to}; a fork makes a new agent stream`);
  const result = await forkStream(deps.nats, { from: path, at: body.at, to: body.to, subscriptions: body.subscriptions }, { ...deps, maxEvents: deps.forkMaxEvents });
  request.log.info({ from: path, at: body.at, to: body.to, events: result.events, created: result.created, by: writer.name }, "stream forked");
  return result;
}
