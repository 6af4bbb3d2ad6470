import type { FastifyRequest } from "fastify";
import { AgentmeshError, ensureError } from "../../shared/contract/errors.js";
import type { StreamPath, StreamSelector } from "../../shared/contract/subjects.js";
import type { Writer } from "../../shared/log/writer.js";
import { allows, type Right } from "./grants.js";
import type { Principal, TokenVerifier } from "./verifier.js";

function describe(selector: StreamSelector): string {
  if (selector.kind === "stream") return selector.path;
  return selector.prefix === null ? "/**" : `${selector.prefix}/**`;
}

/**
 * The gateway's access control: a bearer token (header, or `access_token` on
 * GET for EventSource clients, which cannot set headers) whose grants must
 * cover what a request touches. With no verifier (AUTH=off) everything is allowed.
 */
export class AccessControl {
  private readonly principals = new WeakMap<FastifyRequest, Promise<Principal>>();

  constructor(
    private readonly verifier: TokenVerifier | null,
    /** Events one request may append (GATEWAY_MAX_BATCH_EVENTS), on every face. */
    private readonly maxBatchEvents: number,
  ) {}

  get enabled(): boolean {
    return this.verifier !== null;
  }

  private token(request: FastifyRequest): string | null {
    const header = request.headers.authorization;
    if (header !== undefined) {
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      if (match?.[1] === undefined) throw new AgentmeshError("UNAUTHENTICATED", "The Authorization header must be `Bearer <token>`");
      return match[1];
    }
    if (request.method === "GET") {
      const query = request.query as Record<string, unknown> | undefined;
      const token = query?.access_token;
      if (typeof token === "string" && token !== "") return token;
    }
    return null;
  }

  /** Who is asking; one verification per request however many checks it needs. */
  principal(request: FastifyRequest): Promise<Principal> {
    const verifier = this.verifier;
    if (verifier === null) return Promise.resolve({ subject: "anonymous", grants: [{ path: "/**", rights: ["read", "append", "admin"] }] });
    let principal = this.principals.get(request);
    if (principal === undefined) {
      try {
        const token = this.token(request);
        principal = token === null ? Promise.reject(new AgentmeshError("UNAUTHENTICATED", "A bearer token is required")) : verifier.verify(token);
      } catch (err) {
        principal = Promise.reject(ensureError(err));
      }
      // Callers that only ask (limits) must not leave a rejection unhandled.
      principal.catch(() => undefined);
      this.principals.set(request, principal);
    }
    return principal;
  }

  async require(request: FastifyRequest, right: Right, selector: StreamSelector): Promise<void> {
    if (this.verifier === null) return;
    const principal = await this.principal(request);
    if (!allows(principal.grants, right, selector)) {
      throw new AgentmeshError("FORBIDDEN", `The token does not grant ${right} on ${describe(selector)}`);
    }
  }

  /**
   * The request's client as a writer: appendEvents makes the authorization decision with it. 401 here
   * without a valid token.
   */
  async writer(request: FastifyRequest): Promise<Writer> {
    const { subject, grants } = await this.principal(request);
    return {
      name: `The token of ${subject}`,
      maxBatchEvents: this.maxBatchEvents,
      keyScope: "client",
      may: (right: Right, path: StreamPath) => allows(grants, right, { kind: "stream", path }),
    };
  }
}
