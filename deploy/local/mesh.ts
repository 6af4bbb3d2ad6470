import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { findNatsServer, NATS_INSTALL_HELP, startNatsServer, type NatsServer } from "./nats-server.js";

export const projectRoot = resolve(fileURLToPath(import.meta.url), "../../..");

/** One service of the mesh: a command run as its own process. */
export interface ServiceSpec {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
}

/** A TypeScript service of this repository, run with tsx. */
export function nodeService(name: string, entry: string, env: Record<string, string> = {}): ServiceSpec {
  return { name, command: process.execPath, args: ["--import", "tsx", join(projectRoot, entry)], env };
}

/** The services `npm start` runs (processors in other languages are opt-in: see the README). */
export const DEFAULT_SERVICES: readonly ServiceSpec[] = [
  nodeService("gateway", "gateway/main.ts"),
  nodeService("breaker", "processors/breaker/main.ts"),
  nodeService("scheduler", "processors/scheduler/main.ts"),
  nodeService("webhook-pusher", "processors/webhook-pusher/main.ts"),
  nodeService("llm", "processors/llm/main.ts"),
];

export interface MeshOptions {
  /** An existing NATS; unset starts an embedded nats-server. */
  natsUrl?: string;
  natsPort?: number;
  dataDir: string;
  services: readonly ServiceSpec[];
  /** Environment every service gets (NATS_URL is added). */
  env: NodeJS.ProcessEnv;
  onLine: (service: string, line: string) => void;
  /** Lines nats-server logs. */
  onNatsLine?: (line: string) => void;
  /** A service that exits before stop() was called. */
  onUnexpectedExit?: (service: string, code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface Mesh {
  natsUrl: string;
  /** Services first (SIGTERM, then SIGKILL after 10 s), NATS last. */
  stop(): Promise<void>;
}

/**
 * Start the whole mesh on one machine: nats-server (unless given one), then
 * every service as its own process, each in its own process group so a
 * terminal's Ctrl-C reaches only the launcher, which stops them in order.
 */
export async function startMesh(options: MeshOptions): Promise<Mesh> {
  let nats: NatsServer | undefined;
  let natsUrl = options.natsUrl;
  if (natsUrl === undefined || natsUrl === "") {
    const bin = findNatsServer();
    if (bin === null) throw new Error(NATS_INSTALL_HELP);
    const storeDir = join(options.dataDir, "nats");
    mkdirSync(storeDir, { recursive: true });
    nats = await startNatsServer({ bin, storeDir, ownProcessGroup: true, ...(options.natsPort === undefined ? {} : { port: options.natsPort }), ...(options.onNatsLine === undefined ? {} : { onLog: options.onNatsLine }) });
    natsUrl = nats.url;
  }
  const children = new Map<string, ChildProcess>();
  let stopping = false;
  for (const service of options.services) {
    const child = spawn(service.command, service.args, {
      cwd: projectRoot,
      env: { ...options.env, ...service.env, NATS_URL: natsUrl },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    children.set(service.name, child);
    for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on("line", (line) => { options.onLine(service.name, line); });
    child.on("exit", (code, signal) => {
      children.delete(service.name);
      if (!stopping) options.onUnexpectedExit?.(service.name, code, signal);
    });
  }
  const url = natsUrl;
  return {
    natsUrl: url,
    stop: async () => {
      stopping = true;
      await Promise.all(
        [...children.values()].map(
          (child) =>
            new Promise<void>((done) => {
              if (child.exitCode !== null || child.signalCode !== null) {
                done();
                return;
              }
              const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
              child.once("exit", () => {
                clearTimeout(timer);
                done();
              });
              child.kill("SIGTERM");
            }),
        ),
      );
      await nats?.stop();
    },
  };
}
