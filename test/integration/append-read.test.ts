import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";

/** The JSON body of GET /streams/<path>. */
interface ReadPage {
  events: EventEnvelope[];
  nextOffset: number;
  upToDate: boolean;
}

interface ErrorBody {
  error: { code: string; message: string; lastOffset?: number; field?: string };
}

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ GATEWAY_BODY_LIMIT_BYTES: String(64 * 1024) });
});
afterAll(async () => {
  await gw.close();
});

const post = <T = EventEnvelope>(path: string, body: unknown, headers: Record<string, string> = {}, query = "") =>
  request<T>(`${gw.url}/streams${path}${query}`, { body, headers });
const get = <T = ReadPage>(path: string, query = "") => request<T>(`${gw.url}/streams${path}${query}`);

describe("append and read", () => {
  it("appends one event and reads it back as the stored envelope", async () => {
    const path = uniquePath("agents") + "/bot-1";
    const appended = await post(path, { type: "agent/input-added", payload: { role: "user", content: "hi" }, metadata: { trace: "x" } });
    expect(appended.status).toBe(201);
    expect(appended.body).toMatchObject({ streamPath: path, type: "agent/input-added", payload: { role: "user", content: "hi" }, metadata: { trace: "x" } });
    expect(appended.body.offset).toBeGreaterThan(0);
    expect(new Date(appended.body.createdAt).toISOString()).toBe(appended.body.createdAt);

    const read = await get(path);
    expect(read.status).toBe(200);
    expect(read.body).toEqual({ events: [appended.body], nextOffset: appended.body.offset, upToDate: true });
  });

  it("defaults the payload to {}", async () => {
    const path = uniquePath();
    const appended = await post(path, { type: "ping" });
    expect(appended.body.payload).toEqual({});
  });

  it("appends a batch in order and answers with every envelope", async () => {
    const path = uniquePath();
    const batch = Array.from({ length: 250 }, (_, i) => ({ type: "n", payload: { i } }));
    const appended = await post<EventEnvelope[]>(path, batch);
    expect(appended.status).toBe(201);
    expect(appended.body.map((e) => (e.payload as { i: number }).i)).toEqual(batch.map((_, i) => i));
    const offsets = appended.body.map((e) => e.offset);
    expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
    const read = await get(path, "?limit=1000");
    expect(read.body.events).toEqual(appended.body);
  });

  it("stores an idempotent retry once and returns the original (200)", async () => {
    const path = uniquePath();
    const first = await post(path, { type: "charge", payload: { cents: 5 }, idempotencyKey: "order-17" });
    const retry = await post(path, { type: "charge", payload: { cents: 5 }, idempotencyKey: "order-17" });
    expect(first.status).toBe(201);
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual(first.body);
    // The same key on another stream is another event: keys are per stream.
    const other = await post(uniquePath(), { type: "charge", idempotencyKey: "order-17" });
    expect(other.status).toBe(201);
    const batch = await post<EventEnvelope[]>(path, [{ type: "charge", idempotencyKey: "order-17" }, { type: "new", idempotencyKey: "order-18" }]);
    expect(batch.status).toBe(201);
    expect(batch.body[0]?.offset).toBe(first.body.offset);
    expect((await get(path)).body.events).toHaveLength(2);
  });

  it("enforces If-Match and ?expectOffset with OFFSET_CONFLICT carrying the last offset", async () => {
    const path = uniquePath();
    const created = await post(path, { type: "a" }, { "if-match": "0" });
    expect(created.status).toBe(201);
    const again = await post<ErrorBody>(path, { type: "a" }, { "if-match": "0" });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: "OFFSET_CONFLICT", lastOffset: created.body.offset });

    const next = await post(path, { type: "b" }, { "if-match": `"${created.body.offset}"` });
    expect(next.status).toBe(201);
    const stale = await post<ErrorBody>(path, { type: "c" }, {}, `?expectOffset=${created.body.offset}`);
    expect(stale.status).toBe(409);
    expect(stale.body.error.lastOffset).toBe(next.body.offset);
    const ok = await post(path, { type: "c" }, {}, `?expectOffset=${next.body.offset}`);
    expect(ok.status).toBe(201);
    // A conditional batch is chained: each event expects the one before it.
    const batch = await post<EventEnvelope[]>(path, [{ type: "d" }, { type: "e" }], { "if-match": String(ok.body.offset) });
    expect(batch.status).toBe(201);
    expect((await get(path)).body.events.map((e) => e.type)).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("lets exactly one of many concurrent conditional writers win", async () => {
    const path = uniquePath();
    const first = await post(path, { type: "init" });
    const attempts = await Promise.all(Array.from({ length: 10 }, (_, i) => post(path, { type: "race", payload: { i } }, { "if-match": String(first.body.offset) })));
    const won = attempts.filter((a) => a.status === 201);
    expect(won).toHaveLength(1);
    expect(attempts.filter((a) => a.status === 409)).toHaveLength(9);
    // The losers stored nothing: the log holds the winner's race event and no other.
    expect((await get(path)).body.events).toEqual([first.body, ...won.map((a) => a.body)]);
  });

  it("pages from an offset with nextOffset and upToDate", async () => {
    const path = uniquePath();
    const appended = await post<EventEnvelope[]>(path, Array.from({ length: 25 }, (_, i) => ({ type: "n", payload: { i } })));
    const seen: EventEnvelope[] = [];
    let after = 0;
    for (;;) {
      const page = await get(path, `?after=${after}&limit=10`);
      expect(page.status).toBe(200);
      seen.push(...page.body.events);
      after = page.body.nextOffset;
      if (page.body.upToDate) break;
      expect(page.body.events).toHaveLength(10);
    }
    expect(seen).toEqual(appended.body);
    const tail = await get(path, `?after=${appended.body.at(-1)?.offset ?? 0}`);
    expect(tail.body).toEqual({ events: [], nextOffset: appended.body.at(-1)?.offset, upToDate: true });
    const middle = await get(path, `?after=${appended.body[9]?.offset ?? 0}&limit=3`);
    expect(middle.body.events).toEqual(appended.body.slice(10, 13));
    expect(middle.body.upToDate).toBe(false);
  });

  it("pages on while events are appended between pages, and two readers of the same page each get it whole", async () => {
    const path = uniquePath();
    const other = uniquePath();
    const first = await post<EventEnvelope[]>(path, Array.from({ length: 15 }, (_, i) => ({ type: "n", payload: { i } })));
    const page1 = await get(path, "?after=0&limit=10");
    expect(page1.body.events).toEqual(first.body.slice(0, 10));
    // Events of another stream in between, then more of this one: the next page skips the former and finds the latter.
    await post(other, [{ type: "elsewhere" }, { type: "elsewhere" }]);
    const more = await post<EventEnvelope[]>(path, Array.from({ length: 10 }, (_, i) => ({ type: "n", payload: { i: 15 + i } })));
    const all = [...first.body, ...more.body];
    const [page2, page2Again] = await Promise.all([get(path, `?after=${page1.body.nextOffset}&limit=10`), get(path, `?after=${page1.body.nextOffset}&limit=10`)]);
    expect(page2.body.events).toEqual(all.slice(10, 20));
    expect(page2Again.body).toEqual(page2.body);
    const page3 = await get(path, `?after=${page2.body.nextOffset}&limit=10`);
    expect(page3.body).toEqual({ events: all.slice(20), nextOffset: all.at(-1)?.offset, upToDate: true });

    // A subtree reads in the global order, page after page, across its streams.
    const root = uniquePath("tree");
    const a = await post<EventEnvelope[]>(`${root}/a`, [{ type: "a1" }, { type: "a2" }]);
    const b = await post<EventEnvelope[]>(`${root}/b`, [{ type: "b1" }]);
    const a3 = await post(`${root}/a`, { type: "a3" });
    const tree: EventEnvelope[] = [];
    for (let after = 0; ; ) {
      const page = await get(`${root}/**`, `?after=${after}&limit=2`);
      tree.push(...page.body.events);
      after = page.body.nextOffset;
      if (page.body.upToDate) break;
    }
    expect(tree).toEqual([...a.body, ...b.body, a3.body]);
  });

  it("pages on promptly after the gateway's NATS connection was re-established between two pages", async () => {
    const path = uniquePath();
    const events = await post<EventEnvelope[]>(path, Array.from({ length: 30 }, (_, i) => ({ type: "n", payload: { i } })));
    const first = await get(path, "?after=0&limit=10");
    expect(first.body.events).toEqual(events.body.slice(0, 10));
    await gw.nats.nc.reconnect();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const started = performance.now();
    const second = await get(path, `?after=${first.body.nextOffset}&limit=20`);
    expect(second.body.events).toEqual(events.body.slice(10));
    expect(performance.now() - started).toBeLessThan(5_000);
  }, 20_000);

  it("shows an event a foreign writer stored under a subject no path maps to, as valid JSON", async () => {
    const root = uniquePath("foreign");
    const ours = await post(`${root}/ok`, { type: "ours" });
    // NATS allows any character but `.` in a token; no stream path maps to this one.
    await gw.nats.js.publish(`${eventsSubject(parseStreamPath(root))}.we"ird\\`, JSON.stringify({ type: "foreign", payload: {}, createdAt: new Date().toISOString() }));
    const tree = await get(`${root}/**`);
    expect(tree.status).toBe(200);
    expect(tree.body.events.map((e) => [e.streamPath, e.type])).toEqual([
      [ours.body.streamPath, "ours"],
      [`${root}/we%22ird%5C`, "foreign"],
    ]);
  });

  it("replays from a time", async () => {
    const path = uniquePath();
    await post(path, [{ type: "old" }, { type: "old" }]);
    await new Promise((r) => setTimeout(r, 30));
    const mark = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5));
    const later = await post<EventEnvelope[]>(path, [{ type: "new" }, { type: "new" }]);
    const replay = await get(path, `?at=${encodeURIComponent(mark)}`);
    expect(replay.body.events).toEqual(later.body);
    const fromFirst = await get(path, `?at=${encodeURIComponent(later.body[0]?.createdAt ?? "")}`);
    expect(fromFirst.body.events[0]).toEqual(later.body[0]);
    const future = await get(path, `?at=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
    expect(future.body).toMatchObject({ events: [], upToDate: true });
  });

  it("reads a subtree in global order and lists streams with counts", async () => {
    const root = uniquePath("agents");
    const a = await post(`${root}/a`, { type: "x" });
    const b = await post(`${root}/b`, { type: "y" });
    const a2 = await post(`${root}/a`, { type: "z" });
    await post(`${root}x/other`, { type: "not-below" });
    const subtree = await get(`${root}/**`);
    expect(subtree.body.events).toEqual([a.body, b.body, a2.body]);
    const list = await request<{ streams: unknown[] }>(`${gw.url}/streams?prefix=${root}`);
    expect(list.body.streams).toEqual([
      { path: `${root}/a`, lastOffset: a2.body.offset, eventCount: 2, lastEventAt: a2.body.createdAt, paused: false },
      { path: `${root}/b`, lastOffset: b.body.offset, eventCount: 1, lastEventAt: b.body.createdAt, paused: false },
    ]);
    const paged = await request<{ streams: { path: string }[]; nextCursor?: string }>(`${gw.url}/streams?prefix=${root}&limit=1`);
    expect(paged.body.streams.map((s) => s.path)).toEqual([`${root}/a`]);
    const rest = await request<{ streams: { path: string }[]; nextCursor?: string }>(`${gw.url}/streams?prefix=${root}&limit=1&cursor=${paged.body.nextCursor ?? ""}`);
    expect(rest.body.streams.map((s) => s.path)).toEqual([`${root}/b`]);
    expect(rest.body.nextCursor).toBeUndefined();
  });

  it("reads events written with a plain NATS client, and shows bodies that are not events as stream/invalid-event", async () => {
    const path = uniquePath("foreign");
    const subject = eventsSubject(parseStreamPath(path));
    const encode = (text: string) => new TextEncoder().encode(text);
    const written = await gw.nats.js.publish(subject, encode(JSON.stringify({ type: "tool/settled", payload: { ok: true } })));
    await gw.nats.js.publish(subject, encode("not json"));
    const forgedAck = await gw.nats.js.publish(subject, encode(JSON.stringify({ type: "forged", payload: {}, offset: 1, streamPath: "/elsewhere", createdAt: "2000-01-01T00:00:00.000Z" })));
    await gw.nats.js.publish(subject, new Uint8Array([0xff, 0xfe]));
    const read = await get(path);
    expect(read.body.events.map((e) => e.type)).toEqual(["tool/settled", "stream/invalid-event", "forged", "stream/invalid-event"]);
    const [plain, notJson, forged, binary] = read.body.events;
    // No createdAt in the body: the JetStream timestamp stands in.
    expect(plain).toMatchObject({ streamPath: path, offset: written.seq, payload: { ok: true } });
    expect(Date.parse(plain?.createdAt ?? "")).toBeGreaterThan(Date.now() - 60_000);
    expect(notJson?.payload).toEqual({ reason: "body is not JSON", raw: { text: "not json" } });
    // Fields the system owns cannot be forged from the body.
    // (Offsets are sequences of the one JetStream stream: other tests' appends may come between these.)
    expect(forged).toMatchObject({ streamPath: path, offset: forgedAck.seq });
    expect(binary?.payload).toEqual({ reason: "body is not UTF-8", raw: { base64: "//4=" } });
  });

  it("answers health and readiness", async () => {
    expect((await request(`${gw.url}/healthz`)).status).toBe(200);
    expect(await request(`${gw.url}/readyz`)).toMatchObject({ status: 200, body: { status: "ready" } });
  });
});

describe("what clients send", () => {
  it("keeps a conditional batch chained through a repeated idempotency key in its middle", async () => {
    const path = uniquePath();
    const keyed = await post(path, { type: "keyed", idempotencyKey: "d" });
    const last = await post(path, { type: "other" });
    const batch = await post<EventEnvelope[]>(path, [{ type: "new-1" }, { type: "keyed", idempotencyKey: "d" }, { type: "new-2" }], { "if-match": String(last.body.offset) });
    expect(batch.status).toBe(201);
    expect(batch.body[1]).toEqual(keyed.body);
    expect((await get(path)).body.events.map((e) => e.type)).toEqual(["keyed", "other", "new-1", "new-2"]);
    // A stale offset on a batch that starts with a repeat: the conflict names the offset the client sent.
    const stale = await post<ErrorBody & { error: { expectedOffset: number; appended: number } }>(path, [{ type: "keyed", idempotencyKey: "d" }, { type: "new-3" }], { "if-match": String(last.body.offset) });
    expect(stale.status).toBe(409);
    expect(stale.body.error).toMatchObject({ code: "OFFSET_CONFLICT", expectedOffset: last.body.offset, appended: 1 });
    expect((await get(path)).body.events.map((e) => e.type)).toEqual(["keyed", "other", "new-1", "new-2"]);
  });

  it("reads percent-encoded unreserved characters as themselves (RFC 3986)", async () => {
    const root = uniquePath();
    const appended = await request<EventEnvelope>(`${gw.url}/streams${root}/v1%2E2/x%7Ey%2Dz`, { body: { type: "t" } });
    expect(appended.status).toBe(201);
    expect(appended.body.streamPath).toBe(`${root}/v1.2/x~y-z`);
    expect((await get(`${root}/v1.2/x~y-z`)).body.events).toEqual([appended.body]);
  });

  it("reads, tails and lists the streams below a segment named like the resume action", async () => {
    const root = uniquePath();
    const child = await post(`${root}/resume/child`, { type: "t" });
    expect(child.status).toBe(201);
    expect((await get(`${root}/resume/**`)).body.events).toEqual([child.body]);
    const listed = await request<{ streams: { path: string }[] }>(`${gw.url}/streams?prefix=${root}/resume`);
    expect(listed.body.streams.map((s) => s.path)).toEqual([`${root}/resume/child`]);
    const controller = new AbortController();
    const tail = await fetch(`${gw.url}/streams${root}/resume/**?live=sse`, { signal: controller.signal });
    expect(tail.status).toBe(200);
    controller.abort();
  });

  it("negotiates JSON or SSE from Accept with its q-values", async () => {
    const path = uniquePath();
    await post(path, { type: "t" });
    const typeFor = async (accept: string): Promise<string | null> => {
      const controller = new AbortController();
      const reply = await fetch(`${gw.url}/streams${path}`, { headers: { accept }, signal: controller.signal });
      controller.abort();
      return reply.headers.get("content-type");
    };
    expect(await typeFor("text/event-stream")).toMatch(/^text\/event-stream/);
    expect(await typeFor("application/json;q=0.5, text/event-stream")).toMatch(/^text\/event-stream/);
    expect(await typeFor("text/event-stream;q=0, application/json")).toMatch(/^application\/json/);
    expect(await typeFor("application/json, text/event-stream")).toMatch(/^application\/json/);
    expect(await typeFor("*/*")).toMatch(/^application\/json/);
  });
});

describe("client errors", () => {
  const expectError = (reply: { status: number; body: unknown }, status: number, code: string) => {
    expect(reply.status).toBe(status);
    expect((reply.body as ErrorBody).error.code).toBe(code);
    expect(typeof (reply.body as ErrorBody).error.message).toBe("string");
  };

  it.each(["/a//b", "/a%2Fb", "/a b".replace(" ", "%20"), "/caf%C3%A9", "/" + "x/".repeat(16) + "x", "/" + "y".repeat(1100)])(
    "INVALID_STREAM_PATH for %s",
    async (path) => {
      expectError(await post(path, { type: "t" }), 400, "INVALID_STREAM_PATH");
      expectError(await get(path), 400, "INVALID_STREAM_PATH");
    },
  );

  it("refuses dot segments sent verbatim (fetch would normalise them away)", async () => {
    for (const path of ["/a/./b", "/a/../b", "/./a"]) {
      const reply = await new Promise<{ status: number; body: unknown }>((resolve, reject) => {
        const req = httpRequest({ host: "127.0.0.1", port: gw.port, path: `/streams${path}`, method: "GET" }, (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => (text += chunk.toString()));
          res.on("end", () => {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
          });
        });
        req.on("error", reject);
        req.end();
      });
      expectError(reply, 400, "INVALID_STREAM_PATH");
    }
  });

  it("refuses appends to a subtree", async () => {
    expectError(await post("/agents/**", { type: "t" }), 400, "INVALID_STREAM_PATH");
  });

  it("INVALID_JSON for a malformed body", async () => {
    expectError(await request(`${gw.url}/streams${uniquePath()}`, { method: "POST", rawBody: '{"type":', headers: { "content-type": "application/json" } }), 400, "INVALID_JSON");
  });

  it("INVALID_EVENT names the field that is wrong", async () => {
    const path = uniquePath();
    const cases: [unknown, string][] = [
      [{ payload: {} }, "type"],
      [{ type: "" }, "type"],
      [{ type: "x".repeat(257) }, "type"],
      [{ type: "t", metadata: [1] }, "metadata"],
      [{ type: "t", idempotencyKey: "" }, "idempotencyKey"],
      [{ type: "t", offset: 3 }, "offset"],
      [[{ type: "ok" }, { type: 5 }], "events[1].type"],
      [[], "events"],
      ["just a string", ""],
    ];
    for (const [body, field] of cases) {
      const reply = await post<ErrorBody>(path, body);
      expectError(reply, 400, "INVALID_EVENT");
      if (field !== "") expect(reply.body.error.field).toBe(field);
    }
    expect((await post<ErrorBody>(path, { type: "t", offset: 3 })).body.error.message).toContain("offset");
    // Valid JSON that nests too deeply to be stored again is the client's error, not a 500.
    const deep = `{"type":"t","payload":${"[".repeat(20_000)}${"]".repeat(20_000)}}`;
    expectError(await request(`${gw.url}/streams${path}`, { method: "POST", rawBody: deep, headers: { "content-type": "application/json" } }), 400, "INVALID_EVENT");
    expectError(await get(path), 404, "STREAM_NOT_FOUND");
  });

  it("BATCH_TOO_LARGE above 1000 events", async () => {
    expectError(await post(uniquePath(), Array.from({ length: 1001 }, () => ({ type: "t" }))), 400, "BATCH_TOO_LARGE");
  });

  it("PAYLOAD_TOO_LARGE above the body limit (413)", async () => {
    expectError(await post(uniquePath(), { type: "t", payload: "x".repeat(70 * 1024) }), 413, "PAYLOAD_TOO_LARGE");
  });

  it("UNSUPPORTED_MEDIA_TYPE for a non-JSON append (415)", async () => {
    expectError(await request(`${gw.url}/streams${uniquePath()}`, { method: "POST", rawBody: "type=t", headers: { "content-type": "application/x-www-form-urlencoded" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
    // JSON text sent as text/plain is the wrong content type too, not an invalid event.
    expectError(await request(`${gw.url}/streams${uniquePath()}`, { method: "POST", rawBody: '{"type":"t"}', headers: { "content-type": "text/plain" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("INVALID_EVENT for an idempotency key on an ephemeral event, which nothing stores", async () => {
    const reply = await post<ErrorBody>(uniquePath(), { type: "t", idempotencyKey: "k" }, {}, "?ephemeral=true");
    expectError(reply, 400, "INVALID_EVENT");
    expect(reply.body.error.field).toBe("idempotencyKey");
  });

  it("INVALID_QUERY for a list cursor that no page gave", async () => {
    expectError(await request(`${gw.url}/streams?limit=3&cursor=garbage`), 400, "INVALID_QUERY");
  });

  it("STREAM_NOT_FOUND for a stream with no events (404)", async () => {
    expectError(await get(uniquePath()), 404, "STREAM_NOT_FOUND");
  });

  it("INVALID_QUERY for bad after, limit, at and live", async () => {
    const path = uniquePath();
    await post(path, { type: "t" });
    for (const query of ["?after=-1", "?after=abc", "?limit=0", "?limit=1001", "?at=yesterday", "?after=1&at=2026-01-01T00:00:00Z", "?live=poll"]) {
      expectError(await get(path, query), 400, "INVALID_QUERY");
    }
    expectError(await post(path, { type: "t" }, {}, "?expectOffset=x"), 400, "INVALID_QUERY");
    expectError(await request(`${gw.url}/streams?limit=0`), 400, "INVALID_QUERY");
  });

  it("INVALID_HEADER for a bad If-Match or Last-Event-ID", async () => {
    const path = uniquePath();
    await post(path, { type: "t" });
    expectError(await post(path, { type: "t" }, { "if-match": "*" }), 400, "INVALID_HEADER");
    expectError(await request(`${gw.url}/streams${path}?live=sse`, { headers: { "last-event-id": "abc" } }), 400, "INVALID_HEADER");
  });

  it("NOT_FOUND for unknown routes", async () => {
    expectError(await request(`${gw.url}/nope`), 404, "NOT_FOUND");
  });
});
