import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { AgentmeshError } from "../../../shared/contract/errors.js";
import type { StreamSelector } from "../../../shared/contract/subjects.js";
import type { AddressGuard } from "../../../shared/outbound/address-guard.js";
import type { AccessControl } from "../../auth/access.js";
import { DURABLE_PREFIX } from "../../stream-url.js";
import { formatOffset, ZERO_OFFSET } from "../offsets.js";
import type { DurableStreamStore } from "../stream-store.js";
import { acknowledge, addLink, claim, linkTypeOf, release, removeLinkType, streamInfos, type AckBody } from "./engine.js";
import { protocolPath, streamPathOf, type SubscriptionDispatcher } from "./dispatcher.js";
import { globMatches, globPrefix } from "./glob.js";
import { configOf, IDLE_WAKE, stableConfigHash, SubscriptionRequestSchema, type SubscriptionRecord } from "./record.js";
import type { SubscriptionKeys } from "./signing.js";
import type { SubscriptionStore } from "./store.js";

/**
 * The subscription control plane under /v1/stream/__ds/ (the protocol's
 * reserved tree, never a stream): JWKS, subscription CRUD, their explicit
 * streams, and the wake endpoints (webhook callback; pull-wake claim, ack,
 * release). Configuring needs `admin` on everything a subscription reads;
 * the wake endpoints take the wake token as their only credential.
 */

export const DS_ROOT = `${DURABLE_PREFIX}/__ds`;

export interface SubscriptionRouteDeps {
  enabled: boolean;
  access: AccessControl;
  streams: DurableStreamStore;
  store: SubscriptionStore;
  dispatcher: SubscriptionDispatcher | null;
  keys: SubscriptionKeys | null;
  guard: AddressGuard;
  publicUrl: string | undefined;
}

const SUBSCRIPTION_ID = /^[A-Za-z0-9._~-]{1,200}$/;
const WorkerSchema = z.object({ worker: z.string().min(1).max(200) });
const StreamsSchema = z.object({ streams: z.array(z.string().min(1).max(1024)).min(1).max(1000) });
const WakeRefSchema = z.object({ wake_id: z.string().min(1), generation: z.number().int() });
const AckBodySchema = WakeRefSchema.extend({
  acks: z.array(z.object({ stream: z.string().optional(), path: z.string().optional(), offset: z.string() })).max(10_000).optional(),
  done: z.boolean().optional(),
});

function invalid(message: string, cause?: unknown): AgentmeshError {
  return new AgentmeshError("INVALID_REQUEST", message, { cause });
}

function jsonBody<T>(request: FastifyRequest, schema: z.ZodType<T>): T {
  const raw = Buffer.isBuffer(request.body) ? request.body.toString("utf8") : "";
  let value: unknown;
  try {
    value = JSON.parse(raw === "" ? "{}" : raw);
  } catch (err) {
    throw invalid("The body is not valid JSON", err);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw invalid(parsed.error.issues.map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`).join("; "));
  return parsed.data;
}

/** A protocol path (`events/a`) as ours; 400 INVALID_REQUEST when it is not one. */
function checkedPath(path: string): string {
  try {
    return protocolPath(streamPathOf(path));
  } catch (err) {
    throw invalid(`${JSON.stringify(path.slice(0, 200))} is not a stream path`, err);
  }
}

function bearer(request: FastifyRequest): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? "");
  return match?.[1] ?? null;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch (err) {
    throw invalid("A path segment is not valid percent-encoding", err);
  }
}

function methodNotAllowed(request: FastifyRequest): AgentmeshError {
  return new AgentmeshError("METHOD_NOT_ALLOWED", `${request.method} is not allowed here`);
}

export class SubscriptionRoutes {
  constructor(private readonly deps: SubscriptionRouteDeps) {}

  /** Every request under __ds/: dispatched on the raw URL (stream-url.ts keeps `%2F` encoded, which a stream link needs decoded). */
  async handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const { dispatcher } = this.deps;
    if (!this.deps.enabled || dispatcher === null) throw new AgentmeshError("NOT_FOUND", "Durable Streams subscriptions are off (DURABLE_SUBSCRIPTIONS)");
    const pathname = request.url.split("?", 1)[0] ?? "";
    const segments = pathname.slice(DS_ROOT.length).split("/").slice(1);
    const [root, rawId, action, rawStream, ...extra] = segments;
    // Fastify answers HEAD with the GET handler, without the body.
    const method = request.method === "HEAD" ? "GET" : request.method;
    if (root === "jwks.json" && segments.length === 1) {
      if (method !== "GET") throw methodNotAllowed(request);
      return reply.code(200).header("content-type", "application/jwk-set+json").header("cache-control", "public, max-age=300").send(JSON.stringify(this.deps.keys?.jwks() ?? { keys: [] }));
    }
    if (root !== "subscriptions" || rawId === undefined || extra.length > 0) throw new AgentmeshError("SUBSCRIPTION_NOT_FOUND", "No such subscription route");
    const id = decodeSegment(rawId);
    if (!SUBSCRIPTION_ID.test(id)) throw invalid("A subscription id is 1 to 200 of A-Z a-z 0-9 . _ ~ -");
    if (action === undefined) {
      if (method === "PUT") return await this.put(id, request, reply);
      if (method === "GET") return await this.get(id, request, reply);
      if (method === "DELETE") return await this.remove(id, request, reply);
      throw methodNotAllowed(request);
    }
    if (action === "streams" && rawStream === undefined) {
      if (method !== "POST") throw methodNotAllowed(request);
      return await this.addStreams(id, request, reply);
    }
    if (action === "streams" && rawStream !== undefined) {
      if (method !== "DELETE") throw methodNotAllowed(request);
      return await this.removeStream(id, decodeSegment(rawStream), request, reply);
    }
    if (rawStream !== undefined || !["callback", "claim", "ack", "release"].includes(action)) throw new AgentmeshError("SUBSCRIPTION_NOT_FOUND", "No such subscription route");
    if (method !== "POST") throw methodNotAllowed(request);
    if (action === "claim") return await this.claim(dispatcher, id, request, reply);
    if (action === "release") return await this.release(dispatcher, id, request, reply);
    return await this.acknowledge(dispatcher, id, action === "callback" ? "webhook" : "pull-wake", request, reply);
  }

  /** `admin` on every stream the subscription reads or writes: its streams, its wake stream, and the subtree its pattern covers. */
  private async requireConfigure(request: FastifyRequest, config: { pattern: string | null; streams: readonly string[]; wakeStream: string | null }): Promise<void> {
    const { access } = this.deps;
    if (!access.enabled) return;
    const selectors: StreamSelector[] = [...config.streams, ...(config.wakeStream === null ? [] : [config.wakeStream])].map((path) => ({ kind: "stream", path: streamPathOf(path) }));
    if (config.pattern !== null) {
      const prefix = globPrefix(config.pattern);
      if (prefix === config.pattern) selectors.push({ kind: "stream", path: streamPathOf(prefix) });
      else selectors.push({ kind: "subtree", prefix: prefix === null ? null : streamPathOf(prefix) });
    }
    if (selectors.length === 0) await access.principal(request);
    for (const selector of selectors) await access.require(request, "admin", selector);
  }

  private async found(id: string): Promise<SubscriptionRecord> {
    const found = await this.deps.store.get(id);
    if (found === null) throw new AgentmeshError("SUBSCRIPTION_NOT_FOUND", `No subscription ${id}`);
    return found.record;
  }

  private async tailOf(path: string): Promise<string> {
    const found = await this.deps.streams.lookup(streamPathOf(path));
    if (found.kind === "durable") return formatOffset(found.record.tailSeq);
    if (found.kind === "agent") return formatOffset(found.tailSeq);
    return ZERO_OFFSET;
  }

  private serialize(record: SubscriptionRecord): Record<string, unknown> {
    const { config } = record;
    const keys = this.deps.keys;
    return {
      id: record.id,
      subscription_id: record.id,
      type: config.type,
      pattern: config.pattern,
      streams: Object.entries(record.links)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([path, link]) => ({ path, link_type: linkTypeOf(link), acked_offset: link.acked })),
      webhook: config.webhookUrl === null ? null : { url: config.webhookUrl, signing: { alg: "ed25519", kid: keys?.kid ?? null, jwks_url: `${record.baseUrl}${DS_ROOT}/jwks.json` } },
      wake_stream: config.wakeStream,
      lease_ttl_ms: config.leaseTtlMs,
      created_at: record.createdAt,
      status: record.status,
      description: config.description,
    };
  }

  private baseUrl(request: FastifyRequest): string {
    return (this.deps.publicUrl ?? `${request.protocol}://${request.host}`).replace(/\/+$/, "");
  }

  private async put(id: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const body = jsonBody(request, SubscriptionRequestSchema);
    const config = configOf(body);
    config.streams = config.streams.map(checkedPath);
    if (config.wakeStream !== null) config.wakeStream = checkedPath(config.wakeStream);
    if (config.pattern !== null && config.pattern.split("/").some((segment) => segment === "")) throw invalid("A pattern's segments may not be empty");
    await this.requireConfigure(request, config);
    if (this.deps.keys === null) throw invalid("Subscriptions are not enabled: this gateway has no SECRETS_KEYS to sign wakes and tokens with");
    if (config.webhookUrl !== null) {
      const refusal = await this.deps.guard.resolvedUrlRefusal(config.webhookUrl);
      if (refusal !== null) throw new AgentmeshError("WEBHOOK_URL_REJECTED", `The webhook URL is refused: ${refusal}`);
    }
    const configHash = stableConfigHash(config);
    const existing = await this.deps.store.get(id);
    if (existing !== null) return this.confirm(existing.record, configHash, reply);

    // Streams that exist now start acked at their tail: a subscription hears what happens from now on.
    const paths = new Set(config.streams);
    if (config.pattern !== null) {
      const pattern = config.pattern;
      for (const path of await this.deps.streams.paths()) {
        const protocol = protocolPath(path);
        if (protocol !== config.wakeStream && globMatches(pattern, protocol)) paths.add(protocol);
      }
    }
    let record: SubscriptionRecord = { id, config, configHash, baseUrl: this.baseUrl(request), createdAt: new Date().toISOString(), status: "active", links: {}, wake: IDLE_WAKE };
    for (const path of paths) {
      const tail = await this.tailOf(path);
      if (config.streams.includes(path)) record = addLink(record, path, "explicit", tail);
      if (config.pattern !== null && globMatches(config.pattern, path) && path !== config.wakeStream) record = addLink(record, path, "glob", tail);
    }
    if (!(await this.deps.store.create(record))) {
      const raced = await this.deps.store.get(id);
      if (raced === null) throw new AgentmeshError("SUBSCRIPTION_ALREADY_EXISTS", "The subscription was created and deleted meanwhile; retry");
      return this.confirm(raced.record, configHash, reply);
    }
    if (config.pattern !== null) this.deps.dispatcher?.scheduleCatchUp(id);
    // Who configured what, for audit; the record itself is the working state.
    request.log.info({ subscription: id, type: config.type, pattern: config.pattern, streams: config.streams, wakeStream: config.wakeStream, webhookUrl: config.webhookUrl }, "durable subscription created");
    return reply.code(201).send(this.serialize(record));
  }

  private confirm(record: SubscriptionRecord, configHash: string, reply: FastifyReply): FastifyReply {
    if (record.configHash !== configHash) throw new AgentmeshError("SUBSCRIPTION_ALREADY_EXISTS");
    return reply.code(200).send(this.serialize(record));
  }

  private async get(id: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const record = await this.found(id);
    await this.requireConfigure(request, record.config);
    return reply.code(200).send(this.serialize(record));
  }

  private async remove(id: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const found = await this.deps.store.get(id);
    // Deleting what is not there is done already (204), but still only for an authenticated client.
    await this.requireConfigure(request, found?.record.config ?? { pattern: null, streams: [], wakeStream: null });
    if (found !== null) {
      await this.deps.store.delete(id);
      request.log.info({ subscription: id }, "durable subscription deleted");
    }
    return reply.code(204).send();
  }

  private async addStreams(id: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const paths = jsonBody(request, StreamsSchema).streams.map(checkedPath);
    const record = await this.found(id);
    await this.requireConfigure(request, { ...record.config, streams: [...record.config.streams, ...paths] });
    const tails = await Promise.all(paths.map(async (path) => [path, await this.tailOf(path)] as const));
    const updated = await this.deps.store.transact(id, (r) => Promise.resolve({ next: tails.reduce((next, [path, tail]) => addLink(next, path, "explicit", tail), r), result: null }));
    if (updated === null) throw new AgentmeshError("SUBSCRIPTION_NOT_FOUND", `No subscription ${id}`);
    return reply.code(204).send();
  }

  private async removeStream(id: string, path: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const record = await this.found(id);
    await this.requireConfigure(request, record.config);
    await this.deps.store.transact(id, (r) => Promise.resolve({ next: removeLinkType(r, path, "explicit"), result: null }));
    return reply.code(204).send();
  }

  private verifiedEpoch(id: string, request: FastifyRequest): number {
    const keys = this.deps.keys;
    if (keys === null) throw new AgentmeshError("TOKEN_INVALID");
    return keys.verifyToken(bearer(request), id).epoch;
  }

  /** A webhook callback or a pull-wake ack: the token, then the fence, then the acks; `done` closes the wake. */
  private async acknowledge(dispatcher: SubscriptionDispatcher, id: string, type: "webhook" | "pull-wake", request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const epoch = this.verifiedEpoch(id, request);
    const body: AckBody = jsonBody(request, AckBodySchema);
    const record = await this.found(id);
    if (record.config.type !== type) throw invalid(`This is a ${record.config.type} subscription`);
    const updated = await this.deps.store.transact(id, async (r) => ({ next: acknowledge(r, epoch, body, await dispatcher.tails(r), Date.now()), result: null }));
    if (updated === null) throw new AgentmeshError("SUBSCRIPTION_NOT_FOUND", `No subscription ${id}`);
    const nextWake = body.done === true ? await dispatcher.wake(id) : false;
    return reply.code(200).send({ ok: true, next_wake: nextWake });
  }

  private async claim(dispatcher: SubscriptionDispatcher, id: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const record = await this.found(id);
    if (record.config.type !== "pull-wake") throw invalid("Only a pull-wake subscription is claimed");
    if (this.deps.access.enabled && record.config.wakeStream !== null) await this.deps.access.require(request, "read", { kind: "stream", path: streamPathOf(record.config.wakeStream) });
    const { worker } = jsonBody(request, WorkerSchema);
    const outcome = await this.deps.store.transact(id, async (r) => {
      const tails = await dispatcher.tails(r);
      const decided = claim(r, worker, tails, Date.now());
      return { next: decided.kind === "claimed" ? decided.record : r, result: { decided, tails } };
    });
    if (outcome === null) throw new AgentmeshError("SUBSCRIPTION_NOT_FOUND", `No subscription ${id}`);
    const { decided, tails } = outcome.result;
    if (decided.kind === "busy") throw new AgentmeshError("ALREADY_CLAIMED", `Held by ${decided.holder}`, { details: { current_holder: decided.holder, generation: decided.generation } });
    if (decided.kind === "idle") throw new AgentmeshError("NO_PENDING_WORK");
    const claimed = outcome.record;
    const { wakeId, generation } = claimed.wake;
    const token = this.deps.keys?.mintToken(id, generation);
    if (token === undefined) throw new AgentmeshError("TOKEN_INVALID");
    return reply.code(200).send({ wake_id: wakeId, generation, token, streams: streamInfos(claimed, tails), lease_ttl_ms: claimed.config.leaseTtlMs });
  }

  private async release(dispatcher: SubscriptionDispatcher, id: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const epoch = this.verifiedEpoch(id, request);
    const body = jsonBody(request, WakeRefSchema);
    const updated = await this.deps.store.transact(id, (r) => Promise.resolve({ next: release(r, epoch, body), result: null }));
    if (updated === null) throw new AgentmeshError("SUBSCRIPTION_NOT_FOUND", `No subscription ${id}`);
    await dispatcher.wake(id);
    return reply.code(204).send();
  }
}
