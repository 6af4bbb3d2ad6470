import { Agent, request } from "node:http";

/**
 * Minimal node:http client for the scenarios that drive the gateway from
 * code. node:http is used rather than fetch because its per-request overhead
 * is lower and steadier, which matters when the client shares two cores with
 * the server and its timing is part of a latency figure.
 */

export function keepAliveAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets });
}

export interface HttpReply {
  status: number;
  text: string;
}

export function httpRequest(agent: Agent, url: string, method: "GET" | "POST", body?: string): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(body);
    }
    const req = request(url, { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** POST a JSON body; anything but 2xx is an error, since every benchmark request is expected to succeed. */
export async function postJson<T>(agent: Agent, url: string, body: string): Promise<T> {
  const reply = await httpRequest(agent, url, "POST", body);
  if (reply.status < 200 || reply.status >= 300) throw new Error(`POST ${url} answered ${reply.status}: ${reply.text.slice(0, 300)}`);
  return JSON.parse(reply.text) as T;
}

export async function getJson<T>(agent: Agent, url: string): Promise<T> {
  const reply = await httpRequest(agent, url, "GET");
  if (reply.status !== 200) throw new Error(`GET ${url} answered ${reply.status}: ${reply.text.slice(0, 300)}`);
  return JSON.parse(reply.text) as T;
}
