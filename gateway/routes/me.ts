import type { FastifyInstance } from "fastify";
import type { AccessControl } from "../auth/access.js";
import { RouteDocs } from "../openapi.js";

/**
 * `GET /me`: who the bearer token is and what it grants, so a client (the
 * console) can offer only what the token allows. With auth off: anonymous, everything.
 * It tells a token's holder what the token itself says, nothing more.
 */
export function registerMeRoute(app: FastifyInstance, deps: { access: AccessControl }): void {
  app.get("/me", { schema: RouteDocs.me }, async (request) => {
    const principal = await deps.access.principal(request);
    return { authEnabled: deps.access.enabled, subject: principal.subject, grants: principal.grants };
  });
}
