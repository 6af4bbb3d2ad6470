import { createServer, request as forward, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface HttpProxy {
  url: string;
  /** Answer every request with this status (and no body) until `pass`, and drop the connections open now. */
  refuse(status: number): void;
  pass(): void;
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of a gateway that a test can make answer errors for a while: what a browser meets behind
 * a load balancer while the gateway is restarting, or when the gateway itself answers 503 or 429.
 */
export async function startHttpProxy(target: string): Promise<HttpProxy> {
  const upstream = new URL(target);
  let refusing: number | null = null;
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (refusing !== null) {
      res.writeHead(refusing, { "content-type": "application/json" }).end(`{"error":{"code":"PROXY_REFUSED","message":"refused by the test proxy"}}`);
      return;
    }
    const out = forward({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on("error", () => res.destroy());
    req.pipe(out);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    refuse: (status) => {
      refusing = status;
      for (const socket of sockets) socket.destroy();
    },
    pass: () => {
      refusing = null;
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => { resolve(); });
      }),
  };
}
