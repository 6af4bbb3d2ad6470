import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { startNatsServer, type NatsServer } from "../../deploy/local/nats-server.js";
import { freePort } from "./ports.js";

/** One node of a test cluster: a real nats-server that can be killed and started again on the same ports and store. */
export interface ClusterNode {
  readonly name: string;
  readonly url: string;
  kill(): Promise<void>;
  restart(): Promise<void>;
}

export interface NatsCluster {
  readonly nodes: readonly ClusterNode[];
  /** Every node's URL, comma-separated, as NATS_URL takes them. */
  readonly urls: string;
  /** The node named so (server_name). */
  node(name: string): ClusterNode;
  stop(): Promise<void>;
}

/**
 * Three nats-servers with JetStream, routed to each other on loopback, each
 * with its own temporary store: a cluster that fits a 2-core machine. Resolves
 * once JetStream answers (a meta leader is elected).
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const root = mkdtempSync(join(tmpdir(), "agentmesh-cluster-"));
  const specs = await Promise.all(
    Array.from({ length: size }, async (_, i) => ({ name: `n${i + 1}`, clientPort: await freePort(), routePort: await freePort(), storeDir: join(root, `n${i + 1}`) })),
  );
  const servers = new Map<string, NatsServer | undefined>();
  const start = async (spec: (typeof specs)[number]): Promise<void> => {
    const configFile = join(root, `${spec.name}.conf`);
    const routes = specs.filter((other) => other !== spec).map((other) => `nats-route://127.0.0.1:${other.routePort}`);
    writeFileSync(configFile, `server_name: ${spec.name}\ncluster {\n  name: agentmesh-test\n  listen: 127.0.0.1:${spec.routePort}\n  routes: [${routes.join(", ")}]\n}\n`);
    servers.set(spec.name, await startNatsServer({ configFile, port: spec.clientPort, storeDir: spec.storeDir }));
  };
  await Promise.all(specs.map(start));
  const nodes: ClusterNode[] = specs.map((spec) => ({
    name: spec.name,
    url: `nats://127.0.0.1:${spec.clientPort}`,
    kill: async () => {
      await servers.get(spec.name)?.kill();
      servers.set(spec.name, undefined);
    },
    restart: () => start(spec),
  }));
  const urls = nodes.map((n) => n.url).join(",");
  await waitForJetStream(urls);
  return {
    nodes,
    urls,
    node: (name) => {
      const found = nodes.find((n) => n.name === name);
      if (found === undefined) throw new Error(`no node ${name}`);
      return found;
    },
    stop: async () => {
      await Promise.all([...servers.values()].flatMap((server) => (server === undefined ? [] : [server.stop()])));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Until the cluster's JetStream answers an account info request (it needs an elected meta leader). */
async function waitForJetStream(urls: string, timeoutMs = 30_000): Promise<void> {
  const nc = await connect({ servers: urls.split(","), maxReconnectAttempts: -1 });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2_000 });
        await jsm.getAccountInfo();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error("the cluster's JetStream did not come up", { cause: err });
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  } finally {
    await nc.close();
  }
}
