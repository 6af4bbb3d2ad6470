import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { loadGatewayConfig } from "../../gateway/config.js";
import { loadBreakerConfig } from "../../processors/breaker/config.js";
import { loadLlmConfig } from "../../processors/llm/config.js";
import { loadWebhookPusherConfig } from "../../processors/webhook-pusher/config.js";
import { loadTracesConfig } from "../../processors/traces/config.js";
import { loadMcpConfig } from "../../processors/mcp/config.js";
import { ConfigError } from "../../shared/service/config.js";
import { loadProcessorConfig } from "../../processors/runtime/config.js";
import { findNatsServer, natsServerMissingHelp, startNatsServer, type NatsServer } from "./nats-server.js";

export const projectRoot = resolve(fileURLToPath(import.meta.url), "../../..");

/** One service of the mesh: a command run as its own process. */
export interface ServiceSpec {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  /** Validates the environment the service will get exactly as the service does; throws ConfigError. */
  checkConfig?: (env: NodeJS.ProcessEnv) => void;
}

/** A TypeScript service of this repository, run with tsx. */
export function nodeService(name: string, entry: string, checkConfig?: (env: NodeJS.ProcessEnv) => void): ServiceSpec {
  return { name, command: process.execPath, args: ["--import", "tsx", join(projectRoot, entry)], ...(checkConfig === undefined ? {} : { checkConfig }) };
}

/** The services `npm start` runs (processors in other languages are opt-in: see the README). */
export const DEFAULT_SERVICES: readonly ServiceSpec[] = [
  nodeService("gateway", "gateway/main.ts", loadGatewayConfig),
  nodeService("breaker", "processors/breaker/main.ts", (env) => { loadProcessorConfig(env); loadBreakerConfig(env); }),
  nodeService("scheduler", "processors/scheduler/main.ts", loadProcessorConfig),
  nodeService("webhook-pusher", "processors/webhook-pusher/main.ts", (env) => { loadProcessorConfig(env); loadWebhookPusherConfig(env); }),
  nodeService("llm", "processors/llm/main.ts", (env) => { loadProcessorConfig(env); loadLlmConfig(env); }),
  nodeService("traces", "processors/traces/main.ts", (env) => { loadProcessorConfig(env); loadTracesConfig(env); }),
  nodeService("mcp", "processors/mcp/main.ts", (env) => { loadProcessorConfig(env); loadMcpConfig(env); }),
];

/**
 * Every service's configuration, checked before anything starts: one bad variable is reported once, with the
 * services it concerns, instead of by whichever service happens to fail first after the others have started.
 */
function checkConfigs(services: readonly ServiceSpec[], envOf: (service: ServiceSpec) => NodeJS.ProcessEnv): void {
  const problems = new Map<string, string[]>();
  for (const service of services) {
    try {
      service.checkConfig?.(envOf(service));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const line of err.problems) problems.set(line, [...(problems.get(line) ?? []), service.name]);
    }
  }
  if (problems.size > 0) throw new ConfigError([...problems].map(([problem, names]) => `${problem} (${names.join(", ")})`));
}

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
  const envOf = (service: ServiceSpec, url: string): NodeJS.ProcessEnv => ({ ...options.env, ...service.env, NATS_URL: url });
  // Before anything starts. The embedded server's URL is not known yet; any valid URL stands in for it.
  checkConfigs(options.services, (service) => envOf(service, natsUrl === undefined || natsUrl === "" ? "nats://127.0.0.1:4222" : natsUrl));
  if (natsUrl === undefined || natsUrl === "") {
    const bin = findNatsServer();
    if (bin === null) throw new Error(natsServerMissingHelp());
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
      env: envOf(service, natsUrl),
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
