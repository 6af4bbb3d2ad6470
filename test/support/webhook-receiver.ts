import { createServer, type IncomingHttpHeaders } from "node:http";

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  /** The raw body, byte for byte, as signatures must be checked. */
  body: string;
  at: number;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
}

export interface WebhookReceiver {
  url: string;
  /** Webhooks answered 2xx: what the receiver accepted. */
  received: ReceivedWebhook[];
  /** Every request that reached the receiver, whatever it answered. */
  requests: ReceivedWebhook[];
  /** Decide the answer to each request (default 204). */
  respond: (request: ReceivedWebhook) => Reply;
  close(): Promise<void>;
}

/** A real HTTP receiver on loopback that records every webhook it gets. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const receiver: WebhookReceiver = {
    url: "",
    received: [],
    requests: [],
    respond: () => ({ status: 204 }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const webhook = { headers: request.headers, body: Buffer.concat(chunks).toString("utf8"), at: Date.now() };
      receiver.requests.push(webhook);
      const reply = receiver.respond(webhook);
      if (reply.status >= 200 && reply.status < 300) receiver.received.push(webhook);
      response.writeHead(reply.status, reply.headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  receiver.url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}/hook`;
  return receiver;
}
