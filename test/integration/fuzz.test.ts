import { request as httpRequest } from "node:http";
import fc from "fast-check";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type TestGateway } from "../support/gateway.js";

let gw: TestGateway;
let authGw: TestGateway;
const authSecret = "a-fuzz-test-secret-that-is-40-characters";
const mint = (streams: unknown, subject: string) =>
  new SignJWT({ streams }).setProtectedHeader({ alg: "HS256" }).setSubject(subject).setIssuedAt().setExpirationTime("10m").sign(new TextEncoder().encode(authSecret));
beforeAll(async () => {
  authGw = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: authSecret, GATEWAY_BODY_LIMIT_BYTES: "65536", DURABLE_LONG_POLL_TIMEOUT_MS: "200" });
  // A short long-poll, so that a generated `live=long-poll` read answers within the request timeout.
  gw = await startGateway({ GATEWAY_BODY_LIMIT_BYTES: "65536", DURABLE_LONG_POLL_TIMEOUT_MS: "200" });
  // Streams for the generated requests to find: a JSON and a text Durable Stream, and an agent stream.
  await fetch(`${gw.url}/v1/stream/a`, { method: "PUT", headers: { "content-type": "application/json" }, body: "[1]" });
  await fetch(`${gw.url}/v1/stream/b`, { method: "PUT", headers: { "content-type": "text/plain" }, body: "x" });
  await fetch(`${gw.url}/streams/c`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"t"}' });
});
afterAll(async () => {
  await gw.close();
  await authGw.close();
});

interface RawReply {
  status: number;
  contentType: string;
  body: string;
}

/** A request sent byte for byte as generated (fetch would normalise paths and refuse some headers). */
function send(method: string, path: string, headers: Record<string, string>, body: string | undefined, port = gw.port): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method, path, headers, timeout: 5_000 }, (res) => {
      const contentType = res.headers["content-type"] ?? "";
      if (contentType.startsWith("text/event-stream")) {
        // A valid live tail: its status is the answer; the stream itself would never end.
        res.destroy();
        resolve({ status: res.statusCode ?? 0, contentType, body: "" });
        return;
      }
      let text = "";
      res.on("data", (chunk: Buffer) => (text += chunk.toString()));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, contentType, body: text });
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const pathChar = fc.constantFrom(..."abcXYZ019._~-/%*>?#&=+ :;@!$'()[]{}\\\"\u00e9\u4e2d\u0000".split(""));
const segment = fc.string({ unit: pathChar, minLength: 0, maxLength: 12 });
const anyPath = fc.array(segment, { minLength: 0, maxLength: 20 }).map((parts) => encodeURI(parts.join("/")).replaceAll("%25", "%"));
// Valid paths too, and none at all (the prefix alone names an existing stream), so that routes get past path checks.
const validPath = fc.array(fc.string({ unit: fc.constantFrom(..."abc019._~-".split("")), minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join("/")}`);
const rawPath = fc.oneof(anyPath, validPath, fc.constant(""));
const offsetLike = fc.oneof(fc.constant("-1"), fc.constant("now"), fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `${String(a).padStart(16, "0")}_${String(b).padStart(16, "0")}`));
const query = fc.dictionary(
  fc.constantFrom("after", "limit", "at", "live", "expectOffset", "ephemeral", "prefix", "cursor", "offset", "x"),
  fc.oneof(fc.string({ maxLength: 20 }), fc.integer().map(String), fc.constantFrom("sse", "long-poll"), offsetLike),
  { maxKeys: 4 },
);
const jsonBody = fc.oneof(
  fc.json({ maxDepth: 3 }),
  fc.record({ type: fc.string({ maxLength: 300 }), payload: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
  fc.array(fc.record({ type: fc.string({ maxLength: 10 }) }), { maxLength: 5 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
);
const headerValue = fc.string({ unit: fc.constantFrom(..."0123456789abc\"*, -;=/".split("")), maxLength: 24 });
const anyHeaders = fc.record(
  {
    "content-type": fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "application/octet-stream", "multipart/form-data; boundary=x"),
    "if-match": headerValue,
    "last-event-id": headerValue,
    accept: fc.constantFrom("text/event-stream", "application/json", "*/*"),
    authorization: headerValue,
    // Durable Streams headers (/v1/stream/...).
    "stream-ttl": headerValue,
    "stream-expires-at": fc.oneof(headerValue, fc.date({ noInvalidDate: true }).map((d) => d.toISOString())),
    "stream-closed": fc.constantFrom("true", "false", "TRUE", ""),
    "stream-seq": headerValue,
    "producer-id": headerValue,
    "producer-epoch": headerValue,
    "producer-seq": headerValue,
    "stream-forked-from": fc.oneof(headerValue, fc.constant("/v1/stream/a"), fc.constant("a/b")),
    "stream-fork-offset": fc.oneof(headerValue, offsetLike),
  },
  { requiredKeys: [] },
);

// Often only a content type, so that requests also get past header checks.
const contentTypeOnly = fc.record({ "content-type": fc.constantFrom("application/json", "text/plain", "application/octet-stream") });
const headers = fc.oneof(anyHeaders, contentTypeOnly);

describe("bad input never breaks the gateway", () => {
  it("every route answers random paths, headers, bodies and queries with a 2xx or a 4xx JSON error, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD"),
        fc.constantFrom("/streams/", "/streams", "/hooks/", "/v1/stream/", "/v1/stream/a", "/v1/stream/b", "/v1/stream/c", "/", "/readyz", "/nope/"),
        rawPath,
        query,
        headers,
        jsonBody,
        async (method, prefix, path, queryParams, requestHeaders, body) => {
          const search = new URLSearchParams(queryParams).toString();
          const target = `${prefix}${path}${search === "" ? "" : `?${search}`}`.replaceAll(" ", "%20");
          const withBody = method === "POST" || method === "PUT";
          const reply = await send(method, target.startsWith("/") ? target : `/${target}`, requestHeaders, withBody ? body : undefined);
          expect(reply.status, `${method} ${target} -> ${reply.status} ${reply.body.slice(0, 200)}`).toBeLessThan(500);
          if (reply.status >= 400 && method !== "HEAD") {
            const parsed = JSON.parse(reply.body) as { error?: { code?: unknown; message?: unknown } };
            expect(typeof parsed.error?.code, reply.body).toBe("string");
            expect(typeof parsed.error?.message).toBe("string");
          }
        },
      ),
      { numRuns: 2000 },
    );
  }, 120_000);

  it("with auth on, no route answers 2xx to a token without the right", async () => {
    // Seen from each caller, every stream outside /elsewhere is one it has no right to change (and, but for
    // the read-only token, to read): only the open routes (webhooks in, probes, metrics, docs, CORS) may succeed.
    const callers = {
      none: undefined,
      junk: "Bearer not-a-token",
      elsewhere: `Bearer ${await mint([{ path: "/elsewhere/**", rights: ["read", "append", "admin"] }], "elsewhere")}`,
      readOnly: `Bearer ${await mint([{ path: "/**", rights: ["read"] }], "reader")}`,
    };
    const isOpen = (method: string, target: string): boolean =>
      /^\/(hooks\/|healthz|readyz|metrics|docs)/.test(target) || (method === "OPTIONS" && target.startsWith("/v1/stream/"));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"),
        fc.constantFrom("/streams/", "/streams", "/hooks/", "/v1/stream/", "/v1/stream/a", "/streams/c", "/readyz"),
        rawPath,
        query,
        headers,
        jsonBody,
        fc.constantFrom(...(Object.keys(callers) as (keyof typeof callers)[])),
        fc.boolean(),
        async (method, prefix, path, queryParams, requestHeaders, body, caller, asQueryToken) => {
          const auth = callers[caller];
          const params = { ...queryParams, ...(auth !== undefined && asQueryToken ? { access_token: auth.slice("Bearer ".length) } : {}) };
          const search = new URLSearchParams(params).toString();
          const target = `${prefix}${path}${search === "" ? "" : `?${search}`}`.replaceAll(" ", "%20");
          const headersSent: Record<string, string> = { ...requestHeaders };
          delete headersSent.authorization;
          if (auth !== undefined && !asQueryToken) headersSent.authorization = auth;
          const withBody = method === "POST" || method === "PUT";
          const url = target.startsWith("/") ? target : `/${target}`;
          const reply = await send(method, url, headersSent, withBody ? body : undefined, authGw.port);
          expect(reply.status, `${method} ${url} -> ${reply.status}`).toBeLessThan(500);
          if (reply.status >= 300 || isOpen(method, url)) return;
          const why = `${caller}: ${method} ${url} -> ${reply.status} ${reply.body.slice(0, 200)}`;
          // What may succeed: a read-only token reading, and any valid token listing what it may read.
          const listing = (method === "GET" || method === "HEAD") && /^\/streams([?#]|$)/.test(url);
          if (listing && caller !== "none" && caller !== "junk") {
            if (method === "GET") for (const stream of (JSON.parse(reply.body) as { streams: { path: string }[] }).streams) expect(caller === "readOnly" || stream.path.startsWith("/elsewhere/"), why).toBe(true);
            return;
          }
          expect(caller === "readOnly" && (method === "GET" || method === "HEAD"), why).toBe(true);
        },
      ),
      { numRuns: 1500 },
    );
  }, 120_000);
});
