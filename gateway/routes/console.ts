import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import Negotiator from "negotiator";
import { AgentmeshError } from "../../shared/contract/errors.js";

/** Where `npm run build:console` writes the console (gateway/console/vite.config.ts). */
export const CONSOLE_DIST = fileURLToPath(new URL("../console/dist/", import.meta.url));

/**
 * The page's own rules: scripts, styles and connections from this origin only (the bundle is served here; no
 * CDN), never framed, no referrer (URLs may carry a stream path a person would rather not leak).
 */
const CONSOLE_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

function withHeaders(reply: FastifyReply): FastifyReply {
  for (const [name, value] of Object.entries(CONSOLE_HEADERS)) void reply.header(name, value);
  return reply;
}

/**
 * `GET /console/...`: the browser console, a static bundle with no data in it (every read and write it makes is
 * an API request carrying the person's token), so serving it needs no token. Its routes are the app's own, so
 * any `/console/...` that is not a file is the app's page. `GET /` from a browser redirects here.
 */
export function registerConsoleRoutes(app: FastifyInstance, options: { dist?: string } = {}): void {
  const dist = options.dist ?? CONSOLE_DIST;
  const built = existsSync(`${dist}index.html`);
  app.get("/", (request, reply) => {
    const accept = request.headers.accept;
    const wantsHtml = accept !== undefined && new Negotiator({ headers: { accept } }).mediaType(["application/json", "text/html"]) === "text/html";
    if (wantsHtml) return reply.redirect("/console/", 302);
    return reply.send({ name: "agentmesh", console: "/console/", openapi: "/docs/json", streams: "/streams" });
  });
  if (!built) {
    app.get("/console/*", () => {
      throw new AgentmeshError("NOT_FOUND", "The console is not built here: run `npm run build:console` (npm start does it)");
    });
    return;
  }
  // The bundle's files, looked up per request (a rebuild is served without a restart).
  void app.register(fastifyStatic, {
    root: `${dist}assets`,
    prefix: "/console/assets/",
    index: false,
    // Hashed bundle names never change content: cache them for good.
    setHeaders: (res) => {
      for (const [name, value] of Object.entries(CONSOLE_HEADERS)) res.header(name, value);
      res.header("cache-control", "public, max-age=31536000, immutable");
    },
  });
  const page = (_request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    return withHeaders(reply).header("cache-control", "no-cache").sendFile("index.html", dist);
  };
  app.get("/console", (_request, reply) => reply.redirect("/console/", 301));
  app.get("/console/", page);
  app.get("/console/*", page);
}
