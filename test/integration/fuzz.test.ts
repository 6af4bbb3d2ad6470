import { request as httpRequest } from "node:http";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type TestGateway } from "../support/gateway.js";

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ GATEWAY_BODY_LIMIT_BYTES: "65536" });
});
afterAll(async () => {
  await gw.close();
});

interface RawReply {
  status: number;
  contentType: string;
  body: string;
}

/** A request sent byte for byte as generated (fetch would normalise paths and refuse some headers). */
function send(method: string, path: string, headers: Record<string, string>, body: string | undefined): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port: gw.port, method, path, headers, timeout: 5_000 }, (res) => {
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
const rawPath = fc.array(segment, { minLength: 0, maxLength: 20 }).map((parts) => encodeURI(parts.join("/")).replaceAll("%25", "%"));
const query = fc.dictionary(fc.constantFrom("after", "limit", "at", "live", "expectOffset", "ephemeral", "prefix", "cursor", "x"), fc.oneof(fc.string({ maxLength: 20 }), fc.integer().map(String), fc.constant("sse")), { maxKeys: 4 });
const jsonBody = fc.oneof(
  fc.json({ maxDepth: 3 }),
  fc.record({ type: fc.string({ maxLength: 300 }), payload: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
  fc.array(fc.record({ type: fc.string({ maxLength: 10 }) }), { maxLength: 5 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
);
const headerValue = fc.string({ unit: fc.constantFrom(..."0123456789abc\"*, -;=/".split("")), maxLength: 24 });
const headers = fc.record(
  {
    "content-type": fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "application/octet-stream", "multipart/form-data; boundary=x"),
    "if-match": headerValue,
    "last-event-id": headerValue,
    accept: fc.constantFrom("text/event-stream", "application/json", "*/*"),
    authorization: headerValue,
  },
  { requiredKeys: [] },
);

describe("bad input never breaks the gateway", () => {
  it("every route answers random paths, headers, bodies and queries with a 2xx or a 4xx JSON error, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD"),
        fc.constantFrom("/streams/", "/streams", "/hooks/", "/", "/readyz", "/nope/"),
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
      { numRuns: 1500 },
    );
  }, 120_000);
});
