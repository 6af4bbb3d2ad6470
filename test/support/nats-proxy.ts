import { connect, createServer, type Socket } from "node:net";

export interface NatsProxy {
  /** What to give a client as NATS_URL. */
  url: string;
  /** Hold what the server sends to every client (nothing is lost): their view of NATS lags from now on. */
  hold(): void;
  /** Pass on everything held, in order, and stop holding. */
  release(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of nats-server whose server-to-client direction can be held, so a test can make one
 * gateway's live tail lag behind the log on purpose (what a slow or distant gateway does by itself).
 */
export async function startNatsProxy(natsUrl: string): Promise<NatsProxy> {
  const target = new URL(natsUrl);
  let holding = false;
  const links = new Set<{ client: Socket; upstream: Socket; held: Buffer[] }>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    const link = { client, upstream, held: [] as Buffer[] };
    links.add(link);
    client.on("data", (chunk: Buffer) => upstream.write(chunk));
    upstream.on("data", (chunk: Buffer) => {
      if (holding) link.held.push(chunk);
      else client.write(chunk);
    });
    const end = (): void => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on("close", end);
      socket.on("error", end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `nats://127.0.0.1:${port}`,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const link of links) {
        for (const chunk of link.held) link.client.write(chunk);
        link.held = [];
      }
    },
    close: () =>
      new Promise((resolve) => {
        for (const link of links) {
          link.client.destroy();
          link.upstream.destroy();
        }
        server.close(() => {
          resolve();
        });
      }),
  };
}
