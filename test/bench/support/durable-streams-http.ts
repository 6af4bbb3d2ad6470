import { request, type Agent, type IncomingHttpHeaders } from "node:http";

/**
 * The few Durable Streams protocol calls the benchmark makes, over node:http
 * rather than @durable-streams/client or fetch: the same bytes go to both
 * servers, nothing is batched or retried behind our back, and the per-request
 * overhead stays low and steady (see http.ts). Offsets are opaque strings
 * taken from `Stream-Next-Offset`, as the protocol requires.
 */

export const NEXT_OFFSET = "stream-next-offset";
export const CURSOR = "stream-cursor";

export interface ProtocolReply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** performance.now() when the last byte arrived: the receipt time, before any promise hop. */
  endedAt: number;
}

export function send(agent: Agent, url: string, method: "PUT" | "POST" | "GET", headers: Record<string, string> = {}, body?: string | Buffer): Promise<ProtocolReply> {
  return new Promise((resolve, reject) => {
    const all: Record<string, string | number> = { ...headers };
    if (body !== undefined) all["content-length"] = Buffer.byteLength(body);
    const req = request(url, { method, agent, headers: all }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const endedAt = performance.now();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), endedAt });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

function describe(method: string, url: string, reply: ProtocolReply): string {
  return `${method} ${url} answered ${reply.status}: ${reply.body.toString("utf8").slice(0, 300)}`;
}

function header(reply: ProtocolReply, name: string): string | undefined {
  const value = reply.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** PUT: create the stream (201), or find it already there with the same content type (200). */
export async function createStream(agent: Agent, url: string, contentType: string): Promise<void> {
  const reply = await send(agent, url, "PUT", { "content-type": contentType });
  if (reply.status !== 201 && reply.status !== 200) throw new Error(describe("PUT", url, reply));
}

/** POST one message; the protocol answers 204 with the new tail in `Stream-Next-Offset`. */
export async function append(agent: Agent, url: string, contentType: string, body: string | Buffer): Promise<void> {
  const reply = await send(agent, url, "POST", { "content-type": contentType }, body);
  if (reply.status !== 204 && reply.status !== 200) throw new Error(describe("POST", url, reply));
}

/** The offset to read new messages from: a catch-up read from the start, followed until it is up to date. */
export async function tailOffset(agent: Agent, url: string): Promise<string> {
  let offset = "-1";
  for (;;) {
    const target = `${url}?offset=${encodeURIComponent(offset)}`;
    const reply = await send(agent, target, "GET");
    const next = header(reply, NEXT_OFFSET);
    if (reply.status !== 200 || next === undefined) throw new Error(`${describe("GET", target, reply)} (expected 200 with ${NEXT_OFFSET})`);
    offset = next;
    if (header(reply, "stream-up-to-date") === "true") return offset;
  }
}

export interface LongPollReply {
  /** The data read; empty when the poll timed out (204). */
  body: Buffer;
  nextOffset: string;
  cursor: string | undefined;
  endedAt: number;
}

/**
 * One live long-poll: the server holds it until data past `offset` exists
 * (200 with the data) or its timeout passes (204). The cursor of the previous
 * reply is echoed, as clients do for CDN request collapsing.
 */
export async function longPoll(agent: Agent, url: string, offset: string, cursor: string | undefined): Promise<LongPollReply> {
  const target = `${url}?offset=${encodeURIComponent(offset)}&live=long-poll${cursor === undefined ? "" : `&cursor=${encodeURIComponent(cursor)}`}`;
  const reply = await send(agent, target, "GET");
  const nextOffset = header(reply, NEXT_OFFSET);
  if ((reply.status !== 200 && reply.status !== 204) || nextOffset === undefined) throw new Error(`${describe("GET", target, reply)} (expected 200 or 204 with ${NEXT_OFFSET})`);
  return { body: reply.status === 204 ? Buffer.alloc(0) : reply.body, nextOffset, cursor: header(reply, CURSOR), endedAt: reply.endedAt };
}
