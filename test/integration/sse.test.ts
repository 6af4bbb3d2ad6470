import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { eventsSubject, parseStreamPath } from "../../shared/contract/subjects.js";
import { request, startGateway, uniquePath, type TestGateway } from "../support/gateway.js";
import { startNatsProxy } from "../support/nats-proxy.js";
import { openSse, type SseMessage } from "../support/sse.js";

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ SSE_HEARTBEAT_MS: "200" });
});
afterAll(async () => {
  await gw.close();
});

const append = async (base: string, path: string, body: unknown, query = ""): Promise<EventEnvelope[]> => {
  const reply = await request<EventEnvelope | EventEnvelope[]>(`${base}/streams${path}${query}`, { body });
  if (reply.status >= 300) throw new Error(`append failed: ${reply.status} ${JSON.stringify(reply.body)}`);
  return Array.isArray(reply.body) ? reply.body : [reply.body];
};
const offsetsOf = (messages: SseMessage[]): number[] => messages.filter((m) => m.id !== undefined).map((m) => Number(m.id));
const stored = (messages: SseMessage[]): EventEnvelope[] => messages.filter((m) => m.id !== undefined).map((m) => m.data as EventEnvelope);

describe("SSE live tail", () => {
  it("tails a stream before and after it exists, one message per event with id = offset", async () => {
    const path = uniquePath();
    const sse = await openSse(`${gw.url}/streams${path}?live=sse`);
    expect(sse.status).toBe(200);
    const appended = await append(gw.url, path, [{ type: "a" }, { type: "b" }, { type: "c" }]);
    await sse.waitFor((m) => m.length === 3);
    expect(stored(sse.messages)).toEqual(appended);
    expect(sse.messages.map((m) => m.id)).toEqual(appended.map((e) => String(e.offset)));
    await sse.waitFor(() => sse.comments.includes("heartbeat"), 2_000);
    sse.abort();
  });

  it("catches up from ?after= then follows live, via Accept: text/event-stream", async () => {
    const path = uniquePath();
    const history = await append(gw.url, path, Array.from({ length: 5 }, (_, i) => ({ type: "h", payload: { i } })));
    const sse = await openSse(`${gw.url}/streams${path}?after=${history[1]?.offset ?? 0}`);
    await sse.waitFor((m) => m.length === 3);
    const live = await append(gw.url, path, { type: "live" });
    await sse.waitFor((m) => m.length === 4);
    expect(stored(sse.messages)).toEqual([...history.slice(2), ...live]);
    sse.abort();
  });

  it("interleaves ephemeral events without an id and keeps them out of history", async () => {
    const path = uniquePath();
    const sse = await openSse(`${gw.url}/streams${path}?live=sse`);
    await append(gw.url, path, { type: "before" });
    await sse.waitFor((m) => m.length === 1);
    const ephemeral = await request(`${gw.url}/streams${path}?ephemeral=true`, { body: { type: "agent/llm-response-chunk", payload: { text: "Hel" } } });
    expect(ephemeral.status).toBe(202);
    await sse.waitFor((m) => m.length === 2);
    await append(gw.url, path, { type: "after" });
    await sse.waitFor((m) => m.length === 3);
    expect(sse.messages.map((m) => [m.id === undefined, (m.data as { type: string }).type])).toEqual([
      [false, "before"],
      [true, "agent/llm-response-chunk"],
      [false, "after"],
    ]);
    expect(sse.messages[1]?.data).toMatchObject({ streamPath: path, ephemeral: true, payload: { text: "Hel" } });
    const history = await request<{ events: EventEnvelope[] }>(`${gw.url}/streams${path}`);
    expect(history.body.events.map((e) => e.type)).toEqual(["before", "after"]);
    sse.abort();
  });

  it("resumes with Last-Event-ID after a client-side disconnect: nothing lost, nothing twice", async () => {
    const path = uniquePath();
    const total = 400;
    const writer = (async () => {
      const all: EventEnvelope[] = [];
      for (let i = 0; i < total; i += 10) {
        all.push(...(await append(gw.url, path, Array.from({ length: 10 }, (_, j) => ({ type: "n", payload: { i: i + j } })))));
        await new Promise((r) => setTimeout(r, 2));
      }
      return all;
    })();
    const first = await openSse(`${gw.url}/streams${path}?live=sse`);
    await first.waitFor((m) => m.length >= 60);
    first.abort();
    await first.ended;
    const lastId = first.messages.at(-1)?.id ?? "0";
    const second = await openSse(`${gw.url}/streams${path}?live=sse`, { "last-event-id": lastId });
    const all = await writer;
    await second.waitFor((m) => first.messages.length + m.length >= total);
    const received = [...offsetsOf(first.messages), ...offsetsOf(second.messages)];
    expect(received).toEqual(all.map((e) => e.offset));
    second.abort();
  });

  it("catches up from JetStream when the resume point is older than the replay buffer", async () => {
    const small = await startGateway({ SSE_REPLAY_BUFFER_EVENTS: "5" });
    try {
      const path = uniquePath();
      const early = await openSse(`${small.url}/streams${path}?live=sse`);
      const history = await append(small.url, path, Array.from({ length: 50 }, (_, i) => ({ type: "n", payload: { i } })));
      await early.waitFor((m) => m.length === 50);
      const late = await openSse(`${small.url}/streams${path}?after=0`, {});
      await late.waitFor((m) => m.length === 50);
      const more = await append(small.url, path, Array.from({ length: 20 }, (_, i) => ({ type: "m", payload: { i } })));
      await late.waitFor((m) => m.length === 70);
      expect(offsetsOf(late.messages)).toEqual([...history, ...more].map((e) => e.offset));
      expect(offsetsOf(early.messages)).toEqual([...history, ...more].map((e) => e.offset));
      early.abort();
      late.abort();
    } finally {
      await small.close();
    }
  });

  it("tails a subtree in global order, excluding look-alike prefixes", async () => {
    const root = uniquePath("agents");
    const sse = await openSse(`${gw.url}/streams${root}/**?live=sse`);
    const expected: EventEnvelope[] = [];
    expected.push(...(await append(gw.url, `${root}/a`, { type: "1" })));
    await append(gw.url, `${root}x/a`, { type: "outside" });
    expected.push(...(await append(gw.url, `${root}/b/deep`, { type: "2" })));
    expected.push(...(await append(gw.url, `${root}/a`, { type: "3" })));
    await sse.waitFor((m) => m.length === 3);
    expect(stored(sse.messages)).toEqual(expected);
    // Resuming the subtree from an offset works the same way.
    const resumed = await openSse(`${gw.url}/streams${root}/**?live=sse`, { "last-event-id": String(expected[0]?.offset) });
    await resumed.waitFor((m) => m.length === 2);
    expect(stored(resumed.messages)).toEqual(expected.slice(1));
    sse.abort();
    resumed.abort();
  });

  it("serves many clients of one stream from one JetStream consumer", async () => {
    const path = parseStreamPath(uniquePath());
    const clients = await Promise.all(Array.from({ length: 25 }, () => openSse(`${gw.url}/streams${path}?live=sse`)));
    const appended = await append(gw.url, path, Array.from({ length: 10 }, (_, i) => ({ type: "n", payload: { i } })));
    await Promise.all(clients.map((c) => c.waitFor((m) => m.length === 10)));
    for (const c of clients) expect(offsetsOf(c.messages)).toEqual(appended.map((e) => e.offset));
    const consumers = [];
    for await (const info of gw.nats.jsm.consumers.list(gw.nats.streamName)) {
      if (info.config.filter_subject === eventsSubject(path)) consumers.push(info);
    }
    expect(consumers).toHaveLength(1);
    for (const c of clients) c.abort();
  });

  it("keeps delivering on the same connection right after the gateway's NATS connection is re-established", async () => {
    const root = uniquePath();
    const path = `${root}/a`;
    const subtree = `${root}/**`;
    const one = await openSse(`${gw.url}/streams${path}?live=sse`);
    const all = await openSse(`${gw.url}/streams${subtree}?live=sse`);
    const before = await append(gw.url, path, { type: "before" });
    await one.waitFor((m) => m.length === 1);
    await gw.nats.nc.reconnect();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await append(gw.url, path, [{ type: "after-1" }, { type: "after-2" }]);
    // An ordered consumer left alone would stay silent for tens of seconds here.
    await one.waitFor((m) => m.length === 3, 5_000);
    expect(offsetsOf(one.messages)).toEqual([...before, ...after].map((e) => e.offset));
    await all.waitFor((m) => offsetsOf(m).includes(after[1]?.offset ?? -1), 5_000);
    expect(offsetsOf(all.messages)).toEqual([...before, ...after].map((e) => e.offset));
    one.abort();
    all.abort();
  }, 20_000);

  it("resumes a client from far behind a warm tail whose memory would overflow its socket buffer", async () => {
    // 8 MB of ~1 KB events in the tail's memory: written in one go, more than the kernel's socket buffer and the
    // gateway's cap would take, so the client would be cut off, and again at each resume from the same point.
    const small = await startGateway({ SSE_MAX_BUFFERED_BYTES: String(256 * 1024), SSE_REPLAY_BUFFER_EVENTS: "10000" });
    try {
      const path = uniquePath();
      const keeper = await openSse(`${small.url}/streams${path}?live=sse`);
      const first = await append(small.url, path, { type: "first" });
      const rest: EventEnvelope[] = [];
      for (let i = 0; i < 80; i++) rest.push(...(await append(small.url, path, Array.from({ length: 100 }, (_, j) => ({ type: "big", payload: { i, j, text: "x".repeat(1000) } })))));
      await keeper.waitFor((m) => m.length === 1 + rest.length);
      const late = await openSse(`${small.url}/streams${path}`, { "last-event-id": String(first[0]?.offset ?? 0) });
      await late.waitFor((m) => m.length === rest.length, 10_000);
      expect(offsetsOf(late.messages)).toEqual(rest.map((e) => e.offset));
      // Still the same connection, still live.
      const next = await append(small.url, path, { type: "next" });
      await late.waitFor((m) => m.length === rest.length + 1);
      expect(offsetsOf(late.messages).at(-1)).toBe(next[0]?.offset);
      keeper.abort();
      late.abort();
    } finally {
      await small.close();
    }
  }, 30_000);

  it("resumes on another gateway whose live tail lags behind the client's Last-Event-ID: nothing twice", async () => {
    const proxy = await startNatsProxy(inject("natsUrl"));
    const lagging = await startGateway({ NATS_URL: proxy.url });
    try {
      const path = uniquePath();
      // A client keeps the lagging gateway's tail warm (so a resume there is served from memory and live).
      const keeper = await openSse(`${lagging.url}/streams${path}?live=sse`);
      const first = await append(gw.url, path, { type: "first" });
      await keeper.waitFor((m) => m.length === 1);
      // From here the lagging gateway hears nothing from NATS, while another gateway serves a client three events on.
      proxy.hold();
      const client = await openSse(`${gw.url}/streams${path}?live=sse`, { "last-event-id": String(first[0]?.offset) });
      const ahead = await append(gw.url, path, [{ type: "a" }, { type: "b" }, { type: "c" }]);
      await client.waitFor((m) => m.length === 3);
      client.abort();
      const resumed = await openSse(`${lagging.url}/streams${path}?live=sse`, { "last-event-id": client.messages.at(-1)?.id ?? "" });
      // Its tail catches up with a, b and c, which this client already has, then d, which it has not.
      proxy.release();
      const next = await append(gw.url, path, { type: "d" });
      await resumed.waitFor((m) => offsetsOf(m).includes(next[0]?.offset ?? -1));
      expect(offsetsOf(resumed.messages)).toEqual(next.map((e) => e.offset));
      await keeper.waitFor((m) => m.length === 5);
      expect(offsetsOf(keeper.messages)).toEqual([...first, ...ahead, ...next].map((e) => e.offset));
      keeper.abort();
      resumed.abort();
    } finally {
      proxy.release();
      await lagging.close();
      await proxy.close();
    }
  });

  it("survives a gateway restart: EventSource reconnects with Last-Event-ID and sees every event once", async () => {
    const first = await startGateway();
    const port = first.port;
    const path = uniquePath();
    const received: number[] = [];
    const source = new EventSource(`${first.url}/streams${path}?live=sse`);
    source.onmessage = (event) => {
      received.push(Number(event.lastEventId));
    };
    const expected: number[] = [];
    try {
      await new Promise<void>((resolve) => {
        source.onopen = () => {
          resolve();
        };
      });
      for (let i = 0; i < 20; i++) expected.push(...(await append(first.url, path, { type: "n", payload: { i } })).map((e) => e.offset));
      await waitUntil(() => received.length === 20);
      await first.close(); // the server cuts every SSE connection
      for (let i = 20; i < 40; i++) expected.push(...(await append(gw.url, path, { type: "n", payload: { i } })).map((e) => e.offset));
      const second = await startGateway({}, port);
      try {
        await waitUntil(() => received.length >= 40, 15_000);
        for (let i = 40; i < 50; i++) expected.push(...(await append(second.url, path, { type: "n", payload: { i } })).map((e) => e.offset));
        await waitUntil(() => received.length >= 50);
        expect(received).toEqual(expected);
      } finally {
        source.close();
        await second.close();
      }
    } finally {
      source.close();
    }
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
