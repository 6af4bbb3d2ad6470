import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { lastMessage } from "../../shared/log/read.js";
import { kvKeyOf, type StreamPath } from "../../shared/contract/subjects.js";
import { KvBuckets } from "../../shared/contract/wire.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";

/**
 * What agentmesh promises about the Durable Streams face beyond the published
 * suite (docs/EVENTS.md, "Durable Streams"): where the data is in NATS, what
 * deleting does (and does not do) to it, the agent-stream face's rules, and the size limit.
 */

const BODY_LIMIT = 4 * 1024 * 1024;
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ GATEWAY_BODY_LIMIT_BYTES: String(BODY_LIMIT) });
});
afterAll(async () => {
  await gw.close();
});

const ds = (path: string): string => `${gw.url}/v1/stream${path}`;

async function send(url: string, method: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method, headers, ...(body === undefined ? {} : { body }) });
}

async function recordId(path: string): Promise<string> {
  const kv = await new Kvm(gw.nats.js).open(KvBuckets.durableStreams);
  const entry = await kv.get(kvKeyOf(path as StreamPath));
  if (entry === null) throw new Error(`no record for ${path}`);
  return entry.json<{ id: string }>().id;
}

describe("Durable Streams on JetStream", () => {
  it("stores a stream's messages on durable.<id>, offsets being their JetStream sequences; DELETE unlinks them, never erases them", async () => {
    const path = uniquePath("ds");
    expect((await send(ds(path), "PUT", undefined, { "content-type": "text/plain" })).status).toBe(201);
    const appended = await send(ds(path), "POST", "hello", { "content-type": "text/plain" });
    expect(appended.status).toBe(204);
    const id = await recordId(path);
    const stored = await lastMessage(gw.nats, `durable.${id}`);
    expect(stored?.string()).toBe("hello");
    expect(appended.headers.get("stream-next-offset")).toBe(`0000000000000000_${String(stored?.seq).padStart(16, "0")}`);

    expect((await send(ds(path), "DELETE")).status).toBe(204);
    expect((await send(ds(path), "GET")).status).toBe(404);
    // The events stream denies purges: what was stored stays, as for every agent event.
    expect((await lastMessage(gw.nats, `durable.${id}`))?.string()).toBe("hello");

    // A new stream at the same path is a new incarnation, with its own subject and nothing of the old one.
    expect((await send(ds(path), "PUT", undefined, { "content-type": "text/plain" })).status).toBe(201);
    expect(await recordId(path)).not.toBe(id);
    const fresh = await send(`${ds(path)}?offset=-1`, "GET");
    expect(await fresh.text()).toBe("");
  });

  it("keeps a deleted source readable by its fork (410 to everyone else) until the fork goes", async () => {
    const source = uniquePath("ds-src");
    const fork = uniquePath("ds-fork");
    await send(ds(source), "PUT", "one,", { "content-type": "text/plain" });
    const sourceId = await recordId(source);
    expect((await send(ds(fork), "PUT", undefined, { "content-type": "text/plain", "stream-forked-from": `/v1/stream${source}` })).status).toBe(201);
    expect((await send(ds(source), "DELETE")).status).toBe(204);
    expect((await send(ds(source), "GET")).status).toBe(410);
    expect(await (await send(`${ds(fork)}?offset=-1`, "GET")).text()).toBe("one,");
    expect(await lastMessage(gw.nats, `durable.${sourceId}`)).not.toBeNull();

    expect((await send(ds(fork), "DELETE")).status).toBe(204);
    expect((await send(ds(source), "GET")).status).toBe(404);
    expect((await send(ds(source), "PUT", undefined, { "content-type": "text/plain" })).status).toBe(201);
    expect(await recordId(source)).not.toBe(sourceId);
  });

  it("goes on appending after an append stored its message but never committed it (its gateway died)", async () => {
    const path = uniquePath("ds-orphan");
    await send(ds(path), "PUT", "a", { "content-type": "text/plain" });
    // What a gateway killed between the two steps of an append leaves behind: a message past the record's tail.
    await gw.nats.js.publish(`durable.${await recordId(path)}`, "x");
    expect(await (await send(`${ds(path)}?offset=-1`, "GET")).text()).toBe("a");

    const appended = await send(ds(path), "POST", "b", { "content-type": "text/plain" });
    expect(appended.status).toBe(204);
    expect(await (await send(`${ds(path)}?offset=-1`, "GET")).text()).toBe("axb");
  });

  it("stores concurrent appends together (group commit): each answer's offset covers its data, a bad one fails alone", async () => {
    const path = uniquePath("ds-batch");
    await send(ds(path), "PUT", undefined, { "content-type": "application/json" });
    const writes = Array.from({ length: 60 }, (_, i) =>
      i === 30 ? send(ds(path), "POST", "oops", { "content-type": "text/plain" }) : send(ds(path), "POST", JSON.stringify([{ i }, { i, again: true }]), { "content-type": "application/json" }),
    );
    const answers = await Promise.all(writes);
    expect(answers.map((a) => a.status)).toEqual(answers.map((_, i) => (i === 30 ? 409 : 204)));

    const all = (await (await send(`${ds(path)}?offset=-1`, "GET")).json()) as { i: number; again?: boolean }[];
    expect(all).toHaveLength(118);
    expect(new Set(all.map((v) => `${v.i}${v.again === true ? "+" : ""}`)).size).toBe(118);
    // A POST's two values stay side by side, whatever went in the same message.
    for (let k = 0; k < all.length; k += 2) expect(all[k + 1]).toEqual({ ...all[k], again: true });
    // The offset a POST was answered with is at or after its data: reading up to it shows the values.
    for (const [i, answer] of answers.entries()) {
      if (i === 30) continue;
      const tail = answer.headers.get("stream-next-offset") ?? "";
      const stored = await (await send(`${ds(path)}?offset=${tail}`, "GET")).json() as { i: number }[];
      expect(stored.some((v) => v.i === i)).toBe(false);
    }
    const messages = (await gw.nats.jsm.streams.info(gw.nats.streamName, { subjects_filter: `durable.${await recordId(path)}` })).state.subjects;
    expect(Object.values(messages ?? {})[0]).toBeLessThan(59);
  });

  it("across two gateways, an append racing a close is either refused or inside the closed stream", async () => {
    const other = await startGateway();
    try {
      for (let trial = 0; trial < 30; trial++) {
        const path = uniquePath("ds-close-race");
        await send(ds(path), "PUT", undefined, { "content-type": "text/plain" });
        const [appended, closed] = await Promise.all([
          send(ds(path), "POST", "data", { "content-type": "text/plain" }),
          send(`${other.url}/v1/stream${path}`, "POST", undefined, { "stream-closed": "true" }),
        ]);
        expect(closed.status).toBe(204);
        const read = await send(`${ds(path)}?offset=-1`, "GET");
        const content = await read.text();
        expect(read.headers.get("stream-closed")).toBe("true");
        if (appended.status === 204) {
          // Acknowledged: readable, and before the close.
          expect(content).toBe("data");
          expect(closed.headers.get("stream-next-offset")).toBe(appended.headers.get("stream-next-offset"));
        } else {
          expect(appended.status).toBe(409);
          expect(content).toBe("");
        }
      }
    } finally {
      await other.close();
    }
  });

  it("goes on appending after an orphan while readers keep renewing the stream's TTL", async () => {
    const path = uniquePath("ds-orphan-ttl");
    await send(ds(path), "PUT", "a", { "content-type": "text/plain", "stream-ttl": "20" });
    await gw.nats.js.publish(`durable.${await recordId(path)}`, "x");
    const reading = new AbortController();
    const readers = (async () => {
      while (!reading.signal.aborted) {
        await send(`${ds(path)}?offset=-1`, "GET");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    try {
      const appended = await send(ds(path), "POST", "b", { "content-type": "text/plain" });
      expect(appended.status).toBe(204);
    } finally {
      reading.abort();
      await readers;
    }
    expect(await (await send(`${ds(path)}?offset=-1`, "GET")).text()).toBe("axb");
  }, 15_000);

  it("a bad append in a group commit fails alone: too deep to store, or too large once re-encoded", async () => {
    const path = uniquePath("ds-bad-in-batch");
    await send(ds(path), "PUT", undefined, { "content-type": "application/json" });
    const json = { "content-type": "application/json" };
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const [tooDeep, innocent] = await Promise.all([send(ds(path), "POST", deep, json), send(ds(path), "POST", '{"innocent":1}', json)]);
    expect(tooDeep.status).toBe(400);
    expect(innocent.status).toBe(204);

    // 1e20 is 4 bytes in the body and 21 once stored: each of these fits a message alone, not two together.
    const swelling = `[${Array.from({ length: 40_000 }, () => "1e20").join(",")}]`;
    const both = await Promise.all([send(ds(path), "POST", swelling, json), send(ds(path), "POST", swelling, json)]);
    expect(both.map((r) => r.status)).toEqual([204, 204]);
    const values = (await (await send(`${ds(path)}?offset=-1`, "GET")).json()) as unknown[];
    expect(values).toHaveLength(80_001);
  });

  it("remembers at most 256 idempotent producers per stream, forgetting the one unseen longest", async () => {
    const path = uniquePath("ds-producers");
    await send(ds(path), "PUT", undefined, { "content-type": "text/plain" });
    const produce = (id: string, seq: number): Promise<Response> =>
      send(ds(path), "POST", `${id}:${seq}`, { "content-type": "text/plain", "producer-id": id, "producer-epoch": "0", "producer-seq": String(seq) });
    for (let i = 0; i < 260; i++) expect((await produce(`p${i}`, 0)).status).toBe(200);
    // p0..p3 were forgotten: their next request is a gap from 0; p4 and later are remembered.
    const forgotten = await produce("p0", 1);
    expect(forgotten.status).toBe(409);
    expect(((await forgotten.json()) as { error: { code: string } }).error.code).toBe("PRODUCER_SEQ_GAP");
    expect((await produce("p4", 1)).status).toBe(200);
    // The refused append stored nothing: the stream holds each producer's first append, then p4's second.
    const content = await (await send(`${ds(path)}?offset=-1`, "GET")).text();
    expect(content).toBe(`${Array.from({ length: 260 }, (_, i) => `p${i}:0`).join("")}p4:1`);
    expect((await send(ds(path), "POST", "x", { "content-type": "text/plain", "producer-id": "p".repeat(257), "producer-epoch": "0", "producer-seq": "0" })).status).toBe(400);
  });

  it("serves an agent stream as its envelopes, and refuses to close or delete it", async () => {
    const path = uniquePath("ds-agent");
    const reply = await request<EventEnvelope>(`${gw.url}/streams${path}`, { body: { type: "agent/input-added", payload: { content: "hi" } } });
    expect(reply.status).toBe(201);

    const head = await send(ds(path), "HEAD");
    expect(head.headers.get("content-type")).toBe("application/json");
    const read = await send(`${ds(path)}?offset=-1`, "GET");
    expect(await read.json()).toEqual([reply.body]);

    const close = await send(ds(path), "POST", undefined, { "stream-closed": "true" });
    expect(close.status).toBe(409);
    expect(((await close.json()) as { error: { code: string } }).error.code).toBe("STREAM_APPEND_ONLY");
    const closeWithData = await send(ds(path), "POST", JSON.stringify({ type: "agent/said" }), { "content-type": "application/json", "stream-closed": "true" });
    expect(closeWithData.status).toBe(409);
    const del = await send(ds(path), "DELETE");
    expect(del.status).toBe(409);

    // Same-config PUT is the idempotent create every client does; any other configuration is a conflict.
    expect((await send(ds(path), "PUT", undefined, { "content-type": "application/json" })).status).toBe(200);
    expect((await send(ds(path), "PUT", undefined, { "content-type": "text/plain" })).status).toBe(409);
    // None of the refusals stored anything: the agent stream is as it was, and still open.
    expect((await request<{ events: EventEnvelope[] }>(`${gw.url}/streams${path}`)).body.events).toEqual([reply.body]);
    const after = await send(`${ds(path)}?offset=-1`, "GET");
    expect(after.headers.get("stream-closed")).toBeNull();
  });

  /** A long-poll at the stream's tail, started now; resolves with its status and body. */
  async function pollAtTail(path: string): Promise<{ status: number; body: string; next: string | null }> {
    const head = await send(`${ds(path)}?offset=now`, "GET");
    const tail = head.headers.get("stream-next-offset") ?? "";
    const reply = await send(`${ds(path)}?offset=${tail}&live=long-poll`, "GET");
    return { status: reply.status, body: await reply.text(), next: reply.headers.get("stream-next-offset") };
  }

  it("answers a long-poll waiting at the tail from the append's change notice, without reading the message back", async () => {
    const path = uniquePath("ds");
    expect((await send(ds(path), "PUT", undefined, { "content-type": "text/plain" })).status).toBe(201);
    expect((await send(ds(path), "POST", "first", { "content-type": "text/plain" })).status).toBe(204);
    const id = await recordId(path);
    // Every direct get that reads this stream's data, whoever sends it.
    const reads: string[] = [];
    const watch = gw.nats.nc.subscribe("$JS.API.DIRECT.GET.>", { callback: (_err, msg) => { if (msg.string().includes(`durable.${id}`)) reads.push(msg.string()); } });
    await gw.nats.nc.flush();
    try {
      const poll = pollAtTail(path);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const appended = await send(ds(path), "POST", "second", { "content-type": "text/plain" });
      expect(appended.status).toBe(204);
      const answered = await poll;
      expect(answered).toEqual({ status: 200, body: "second", next: appended.headers.get("stream-next-offset") });
      expect(reads).toEqual([]);
    } finally {
      watch.unsubscribe();
    }
  });

  it("gives a waiting long-poll every message, in order, when appends land back to back or one is too large to repeat in the notice", async () => {
    const path = uniquePath("ds");
    expect((await send(ds(path), "PUT", undefined, { "content-type": "text/plain" })).status).toBe(201);
    for (const batch of [["a", "b", "c"], ["x".repeat(200 * 1024)]]) {
      const poll = pollAtTail(path);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const answers = await Promise.all(batch.map((body) => send(ds(path), "POST", body, { "content-type": "text/plain" })));
      expect(answers.map((a) => a.status)).toEqual(batch.map(() => 204));
      const first = await poll;
      expect(first.status).toBe(200);
      // Whatever the first answer holds, reading on from it gives the rest.
      const rest = await (await send(`${ds(path)}?offset=${first.next ?? ""}`, "GET")).text();
      expect(first.body + rest).toBe(batch.join(""));
    }
  });

  it("answers a committed append once, however large its record beside its body (the change notice never fails an append)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agentmesh-ds-"));
    const configFile = join(dir, "nats.conf");
    // Small messages, so that a record of 20 long producer ids beside a 65,000-byte body does not fit in one.
    writeFileSync(configFile, "max_payload: 70000\n");
    const server = await startNatsServer({ configFile });
    const small = await startGateway({ NATS_URL: server.url });
    try {
      const url = `${small.url}/v1/stream${uniquePath("ds")}`;
      expect((await send(url, "PUT", undefined, { "content-type": "text/plain" })).status).toBe(201);
      for (let i = 0; i < 20; i++) {
        const reply = await send(url, "POST", "p", { "content-type": "text/plain", "producer-id": `${"p".repeat(240)}-${i}`, "producer-epoch": "0", "producer-seq": "0" });
        expect(reply.ok).toBe(true);
      }
      const tail = (await send(`${url}?offset=now`, "GET")).headers.get("stream-next-offset") ?? "";
      const poll = send(`${url}?offset=${tail}&live=long-poll`, "GET").then(async (r) => ({ status: r.status, body: await r.text() }));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const big = "b".repeat(65_000);
      expect((await send(url, "POST", big, { "content-type": "text/plain" })).status).toBe(204);
      expect(await poll).toEqual({ status: 200, body: big });
      expect(await (await send(`${url}?offset=-1`, "GET")).text()).toBe("p".repeat(20) + big);
    } finally {
      await small.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses with 413 an append larger than one NATS message, and stores nothing", async () => {
    const path = uniquePath("ds-big");
    await send(ds(path), "PUT", undefined, { "content-type": "application/octet-stream" });
    const maxPayload = gw.nats.nc.info?.max_payload ?? 1024 * 1024;
    const tooBig = await send(ds(path), "POST", Buffer.alloc(maxPayload + 1, 7), { "content-type": "application/octet-stream" });
    expect(tooBig.status).toBe(413);
    expect(((await tooBig.json()) as { error: { code: string } }).error.code).toBe("PAYLOAD_TOO_LARGE");
    const fits = await send(ds(path), "POST", Buffer.alloc(maxPayload - 8192, 7), { "content-type": "application/octet-stream" });
    expect(fits.status).toBe(204);
    const read = await send(`${ds(path)}?offset=-1`, "GET");
    expect((await read.arrayBuffer()).byteLength).toBe(maxPayload - 8192);
  });
});
