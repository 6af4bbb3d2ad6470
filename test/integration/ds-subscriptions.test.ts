import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { startGateway, type TestGateway } from "../support/gateway.js";

/**
 * Durable Streams subscriptions across gateway replicas on one nats-server:
 * every stream change reaches one replica (the shared consumer), and the
 * subscription's compare-and-set lets only one open the wake, so each
 * generation is delivered once; a replica that dies mid-lease leaves the wake
 * to another, whose lease timer wakes the subscription again.
 */

interface Wake {
  subscription_id: string;
  wake_id: string;
  generation: number;
  streams: { path: string; tail_offset: string; has_pending: boolean }[];
  at: number;
}

interface Receiver {
  url: string;
  wakes: Wake[];
  waitFor(count: number, timeoutMs?: number): Promise<Wake[]>;
  close(): Promise<void>;
}

async function startReceiver(reply: Record<string, unknown>): Promise<Receiver> {
  const wakes: Wake[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      wakes.push({ ...(JSON.parse(Buffer.concat(chunks).toString("utf8")) as Omit<Wake, "at">), at: Date.now() });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("receiver has no port");
  return {
    url: `http://127.0.0.1:${address.port}/hook`,
    wakes,
    waitFor: async (count, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (wakes.length < count) {
        if (Date.now() > deadline) throw new Error(`${wakes.length} wakes of ${count} in ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return wakes;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    },
  };
}

const ENV = { DURABLE_SUBSCRIPTIONS: "on", DURABLE_WEBHOOK_ALLOWED_NETWORKS: "loopback" };
const open: { close(): Promise<void> }[] = [];

afterEach(async () => {
  for (const closable of open.splice(0).reverse()) await closable.close().catch(() => undefined);
});

async function gateway(): Promise<TestGateway> {
  const started = await startGateway(ENV);
  open.push(started);
  return started;
}

function send(url: string, method: string, body: unknown, contentType = "application/json"): Promise<Response> {
  return fetch(url, { method, headers: { "content-type": contentType }, body: typeof body === "string" ? body : JSON.stringify(body) });
}

async function subscribe(gw: TestGateway, id: string, pattern: string, url: string, leaseTtlMs: number): Promise<void> {
  const created = await send(`${gw.url}/v1/stream/__ds/subscriptions/${id}`, "PUT", { type: "webhook", pattern, webhook: { url }, lease_ttl_ms: leaseTtlMs });
  expect(created.status, await created.clone().text()).toBe(201);
}

async function subscription(gw: TestGateway, id: string): Promise<{ streams: { path: string; acked_offset: string }[] }> {
  const reply = await fetch(`${gw.url}/v1/stream/__ds/subscriptions/${id}`);
  expect(reply.status).toBe(200);
  return (await reply.json()) as { streams: { path: string; acked_offset: string }[] };
}

async function until(predicate: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const unique = (): string => `dss${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

describe("Durable Streams subscriptions on two gateway replicas", () => {
  it("delivers each change once: one wake per generation, whichever replica took the write", async () => {
    const [a, b] = [await gateway(), await gateway()];
    const receiver = await startReceiver({ done: true });
    open.push(receiver);
    const root = unique();
    const id = `${root}-sub`;
    await subscribe(a, id, `${root}/*`, receiver.url, 5_000);
    // Both replicas' caches know the subscription before the first change.
    await new Promise((resolve) => setTimeout(resolve, 300));

    const path = `${root}/s1`;
    expect((await send(`${b.url}/v1/stream/${path}`, "PUT", { n: 0 })).status).toBe(201);
    await receiver.waitFor(1);
    const changes = 6;
    for (let n = 1; n <= changes; n++) {
      const gw = n % 2 === 0 ? a : b;
      const appended = await send(`${gw.url}/v1/stream/${path}`, "POST", { n });
      expect(appended.status).toBe(204);
      const tail = appended.headers.get("stream-next-offset");
      // Each change is acked (the receiver answers done) before the next, so each opens a wake of its own.
      await until(async () => (await subscription(gw, id)).streams.some((s) => s.path === path && s.acked_offset === tail));
    }
    // Time for a duplicate to show, if there were one.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const generations = receiver.wakes.map((w) => w.generation);
    expect(new Set(generations).size, `generations ${generations.join(",")}`).toBe(generations.length);
    expect(generations).toEqual([...generations].sort((x, y) => x - y));
    expect(receiver.wakes.length).toBe(changes + 1);
    expect(receiver.wakes.every((w) => w.subscription_id === id && w.streams.some((s) => s.path === path && s.has_pending))).toBe(true);
  });

  it("opens one wake at a time under concurrent appends through both replicas: generations are consecutive and never repeated", async () => {
    const [a, b] = [await gateway(), await gateway()];
    const receiver = await startReceiver({ done: true });
    open.push(receiver);
    const root = unique();
    const id = `${root}-sub`;
    await subscribe(a, id, `${root}/*`, receiver.url, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const paths = [`${root}/x`, `${root}/y`];
    for (const path of paths) expect((await send(`${a.url}/v1/stream/${path}`, "PUT", [], "application/json")).status).toBe(201);
    const replies = await Promise.all(Array.from({ length: 40 }, (_, n) => send(`${(n % 2 === 0 ? a : b).url}/v1/stream/${paths[n % 4 < 2 ? 0 : 1] ?? ""}`, "POST", { n })));
    expect(replies.every((r) => r.status === 204)).toBe(true);
    const tails = await Promise.all(paths.map(async (path) => (await fetch(`${a.url}/v1/stream/${path}`, { method: "HEAD" })).headers.get("stream-next-offset")));
    await until(async () => {
      const { streams } = await subscription(a, id);
      return paths.every((path, i) => streams.some((s) => s.path === path && s.acked_offset === tails[i]));
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const generations = receiver.wakes.map((w) => w.generation);
    const first = generations[0] ?? 0;
    expect(generations, `generations ${generations.join(",")}`).toEqual(generations.map((_, i) => first + i));
    expect(new Set(receiver.wakes.map((w) => w.wake_id)).size).toBe(receiver.wakes.length);
  });

  it("wakes again from the other replica when the delivering one is closed mid-lease", async () => {
    const leaseTtlMs = 4_000;
    const a = await gateway();
    // The receiver never says done and never calls back: only the lease's end wakes the subscription again.
    const receiver = await startReceiver({});
    open.push(receiver);
    const root = unique();
    const id = `${root}-sub`;
    await subscribe(a, id, `${root}/*`, receiver.url, leaseTtlMs);
    expect((await send(`${a.url}/v1/stream/${root}/s1`, "PUT", { n: 0 })).status).toBe(201);
    // Only `a` runs: it delivered this wake and holds its lease.
    const [first] = await receiver.waitFor(1);
    const b = await gateway();
    await a.close();
    const closedAt = Date.now();
    expect(receiver.wakes.length).toBe(1);

    const wakes = await receiver.waitFor(2, leaseTtlMs + 5_000);
    const second = wakes[1];
    expect(second?.generation).toBe((first?.generation ?? 0) + 1);
    expect(second?.wake_id).not.toBe(first?.wake_id);
    expect(second?.at ?? 0).toBeGreaterThan(closedAt);
    // Still one wake per lease: b does not deliver the same generation twice.
    const generations = receiver.wakes.map((w) => w.generation);
    expect(new Set(generations).size).toBe(generations.length);
    expect((await subscription(b, id)).streams.some((s) => s.path === `${root}/s1`)).toBe(true);
  });
});
