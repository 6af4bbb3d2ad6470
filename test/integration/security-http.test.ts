import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { readAll } from "../support/processors.js";
import { bearer, JWT_SECRET, mintToken } from "../support/security.js";
import { openSse } from "../support/sse.js";

/** HTTP-level protections: caching of authenticated reads, and clients that send slowly. */

let open: TestGateway;
const root = uniquePath("sec-http");

beforeAll(async () => {
  // AUTH=off, on the same NATS: reads the log back whatever the gateway under test refused.
  open = await startGateway();
});
afterAll(async () => {
  await open.close();
});

/** A Durable Streams stream whose first catch-up read stops before its tail (reads stop after 4 MiB). */
async function bigDurableStream(url: string, path: string, headers: Record<string, string>): Promise<void> {
  const created = await fetch(`${url}/v1/stream${path}`, { method: "PUT", headers: { ...headers, "content-type": "application/octet-stream" } });
  expect(created.status).toBe(201);
  for (let i = 0; i < 6; i++) {
    const appended = await fetch(`${url}/v1/stream${path}`, { method: "POST", headers: { ...headers, "content-type": "application/octet-stream" }, body: new Uint8Array(900_000).fill(i) });
    expect(appended.status).toBeLessThan(300);
  }
}

describe("HTTP protections", () => {
  it("never lets a shared cache keep an authenticated Durable Streams read, while an open gateway's stay public", async () => {
    const gw = await startGateway({ AUTH: "jwt", AUTH_JWT_SECRET: JWT_SECRET });
    try {
      const path = `${root}/cached`;
      const token = await mintToken([{ path: `${root}/**`, rights: ["read", "append"] }]);
      await bigDurableStream(gw.url, path, bearer(token));

      const authed = await fetch(`${gw.url}/v1/stream${path}?offset=-1`, { headers: bearer(token) });
      await authed.arrayBuffer();
      expect(authed.status).toBe(200);
      // Not up to date: the response a cache could keep (an up-to-date one is no-cache anyway).
      expect(authed.headers.get("stream-up-to-date")).toBeNull();
      const cacheControl = authed.headers.get("cache-control") ?? "";
      expect(cacheControl).toContain("private");
      expect(cacheControl).not.toContain("public");
      expect((authed.headers.get("vary") ?? "").toLowerCase()).toContain("authorization");

      // The same read on a gateway without auth stays publicly cacheable (the protocol's conformance suite wants it).
      const anonymous = await fetch(`${open.url}/v1/stream${path}?offset=-1`);
      await anonymous.arrayBuffer();
      expect(anonymous.status).toBe(200);
      expect(anonymous.headers.get("stream-up-to-date")).toBeNull();
      expect(anonymous.headers.get("cache-control")).toContain("public");
    } finally {
      await gw.close();
    }
  });

  // Node checks request timeouts every connectionsCheckingInterval (30 s by default): the gateway sets it from the
  // timeout, or a trickling client with GATEWAY_REQUEST_TIMEOUT_MS=1000 would be cut off after ~90 s.
  it("cuts off a client that trickles its request body within a few seconds of GATEWAY_REQUEST_TIMEOUT_MS, storing nothing", async () => {
    const gw = await startGateway({ GATEWAY_REQUEST_TIMEOUT_MS: "1000" });
    try {
      const path = `${root}/slow`;
      const socket: Socket = connect(gw.port, "127.0.0.1");
      await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
      let answer = "";
      socket.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
      socket.on("error", () => undefined);
      const closed = new Promise<number>((resolve) => socket.once("close", () => { resolve(Date.now()); }));
      const startedAt = Date.now();
      socket.write(`POST /streams${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n`);
      const body = `{"type":"slow","payload":"${"x".repeat(100)}`.slice(0, 100);
      let sent = 0;
      const trickle = setInterval(() => {
        if (socket.destroyed || sent >= body.length) return;
        socket.write(body[sent] ?? " ");
        sent += 1;
      }, 300);
      const endedAt = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => { resolve(Number.NaN); }, 5_000))]);
      clearInterval(trickle);
      socket.destroy();
      expect((await readAll(open.url, path)).map((e) => e.type)).toEqual([]);
      // Cut off (408, or the socket closed) within a few seconds, long before the 30 s the body would take.
      expect(endedAt - startedAt).toBeLessThan(4_000);
      if (answer !== "") expect(answer).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      await gw.close();
    }
  });

  it("gives the HTTP server GATEWAY_REQUEST_TIMEOUT_MS as its request timeout, which leaves live tails alone", async () => {
    const gw = await startGateway({ GATEWAY_REQUEST_TIMEOUT_MS: "1000" });
    try {
      // What Node enforces on a slow request (the test above shows how soon).
      expect(gw.app.server.requestTimeout).toBe(1000);
      const path = `${root}/tail`;
      // A live tail is a response, not a slow request: it is held open past the timeout and keeps receiving.
      const tail = await openSse(`${gw.url}/streams${path}?live=sse`);
      expect(tail.status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect((await request(`${gw.url}/streams${path}`, { body: { type: "after-2s" } })).status).toBe(201);
      await tail.waitFor((messages) => messages.some((m) => (m.data as { type?: string }).type === "after-2s"), 5_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect((await request(`${gw.url}/streams${path}`, { body: { type: "after-2.5s" } })).status).toBe(201);
      await tail.waitFor((messages) => messages.some((m) => (m.data as { type?: string }).type === "after-2.5s"), 5_000);
      expect(tail.messages.map((m) => (m.data as { type?: string }).type)).toEqual(["after-2s", "after-2.5s"]);
      tail.abort();
    } finally {
      await gw.close();
    }
  });
});
