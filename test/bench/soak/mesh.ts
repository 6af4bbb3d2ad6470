import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DEFAULT_SERVICES, startMesh, type ServiceSpec } from "../../../deploy/local/mesh.js";
import { startNatsServer } from "../../../deploy/local/nats-server.js";
import { freePort } from "../support/gateway-process.js";
import type { LogTally } from "./logs.js";
import { ServerMonitor } from "./monitor.js";

/**
 * The mesh the soak runs against, started as `npm start` starts it: its own
 * nats-server (free ports, a temporary store, monitoring on), then the gateway
 * and the four processors, each its own process, through deploy/local/mesh.ts
 * with DEFAULT_SERVICES. AUTH=off, a generated SECRETS_KEYS, webhooks to
 * loopback allowed, and no LLM_BASE_URL, so the llm processor answers with its
 * offline echo provider.
 */

export interface SoakMesh {
  gatewayUrl: string;
  natsUrl: string;
  monitorUrl: string;
  monitor: ServerMonitor;
  /** nats-server first, then every service by name. */
  pids: ReadonlyMap<string, number>;
  /** With `profile`: save nats-server's heap profile (pprof format, for `go tool pprof`) to a file. */
  saveNatsHeapProfile(file: string): Promise<void>;
  /** With `profile`: nats-server's Go memory statistics (null without profiling, or if it did not answer). */
  natsMemStats(): Promise<GoMemStats | null>;
  stop(): Promise<void>;
}

/**
 * nats-server's Go runtime memory (`runtime.MemStats`, read from the text form of its heap profile), in MB: what of
 * its RSS is Go heap in use, and what is the collector's headroom (the heap may grow to `gcGoalMb` before the next
 * collection: twice what the last one left live, with GOGC=100) or pages not yet given back.
 */
export interface GoMemStats {
  heapInUseMb: number;
  heapAllocMb: number;
  gcGoalMb: number;
  /** Heap pages returned to the OS (not part of the RSS). */
  heapReleasedMb: number;
  /** Everything the Go runtime has mapped. */
  sysMb: number;
  numGc: number;
}

/** The `# Name = value` lines that end a Go heap profile's text form (`?debug=1`). */
export function parseGoMemStats(text: string): GoMemStats | null {
  const value = (name: string): number | null => {
    const match = new RegExp(`^# ${name} = (\\d+)`, "m").exec(text);
    return match?.[1] === undefined ? null : Number(match[1]);
  };
  const mb = (bytes: number | null): number => Math.round(((bytes ?? 0) / 1048576) * 10) / 10;
  const inUse = value("HeapInuse");
  if (inUse === null) return null;
  return { heapInUseMb: mb(inUse), heapAllocMb: mb(value("HeapAlloc")), gcGoalMb: mb(value("NextGC")), heapReleasedMb: mb(value("HeapReleased")), sysMb: mb(value("Sys")), numGc: value("NumGC") ?? 0 };
}

export interface SoakMeshOptions {
  logs: LogTally;
  /** LOG_LEVEL of every service. */
  logLevel: string;
  /** A service exited while the soak was running. */
  onUnexpectedExit: (service: string, why: string) => void;
  progress: (message: string) => void;
  /** Serve nats-server's pprof endpoints (its `prof_port`): heap profiles and Go memory statistics. */
  profile: boolean;
}

const READY_TIMEOUT_MS = 90_000;

export async function startSoakMesh(options: SoakMeshOptions): Promise<SoakMesh> {
  const dataDir = mkdtempSync(join(tmpdir(), "agentmesh-soak-"));
  const profilePort = options.profile ? await freePort() : null;
  const configFile = join(dataDir, "nats.conf");
  if (profilePort !== null) writeFileSync(configFile, `prof_port: ${profilePort}\n`);
  let nats;
  try {
    nats = await startNatsServer({ monitorPort: -1, onLog: (line) => { options.logs.natsLine(line); }, ...(profilePort === null ? {} : { configFile }) });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const cleanupNats = async (): Promise<void> => {
    await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  if (nats.monitorUrl === undefined) {
    await cleanupNats();
    throw new Error("nats-server did not report its monitoring port");
  }
  const monitorUrl = nats.monitorUrl;
  const monitor = new ServerMonitor(monitorUrl);
  const gatewayPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AUTH: "off",
    SECRETS_KEYS: `soak:${randomBytes(32).toString("base64")}`,
    WEBHOOK_ALLOWED_NETWORKS: "loopback",
    GATEWAY_PORT: String(gatewayPort),
    LOG_LEVEL: options.logLevel,
  };
  // The offline echo provider: a soak must not call a real model.
  delete env.LLM_BASE_URL;
  let mesh;
  try {
    mesh = await startMesh({
      natsUrl: nats.url,
      dataDir,
      services: DEFAULT_SERVICES,
      env,
      onLine: (service, line) => { options.logs.serviceLine(service, line); },
      onUnexpectedExit: (service, code, signal) => { options.onUnexpectedExit(service, String(code ?? signal)); },
    });
  } catch (err) {
    await cleanupNats();
    throw err;
  }
  const stop = async (): Promise<void> => {
    await mesh.stop();
    await cleanupNats();
  };
  try {
    const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    await waitReady(gatewayUrl, monitor, options.progress);
    const pids = new Map<string, number>([["nats-server", nats.pid], ...childPids(DEFAULT_SERVICES)]);
    const saveNatsHeapProfile = async (file: string): Promise<void> => {
      if (profilePort === null) throw new Error("nats-server was started without profiling");
      const reply = await fetch(`http://127.0.0.1:${profilePort}/debug/pprof/heap`, { signal: AbortSignal.timeout(30_000) });
      if (!reply.ok) throw new Error(`nats-server's heap profile answered ${reply.status}`);
      writeFileSync(file, Buffer.from(await reply.arrayBuffer()));
    };
    const natsMemStats = async (): Promise<GoMemStats | null> => {
      if (profilePort === null) return null;
      try {
        const reply = await fetch(`http://127.0.0.1:${profilePort}/debug/pprof/heap?debug=1`, { signal: AbortSignal.timeout(10_000) });
        return reply.ok ? parseGoMemStats(await reply.text()) : null;
      } catch {
        return null;
      }
    };
    return { gatewayUrl, natsUrl: nats.url, monitorUrl, monitor, pids, saveNatsHeapProfile, natsMemStats, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The pid of each service: startMesh keeps them to itself, so they are found
 * as this process's children whose command line is exactly the service's.
 */
function childPids(services: readonly ServiceSpec[]): [string, number][] {
  const found: [string, number][] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== process.pid) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter((s) => s !== "");
      const service = services.find((s) => [s.command, ...s.args].join("\0") === cmdline.join("\0"));
      if (service !== undefined) found.push([service.name, Number(entry)]);
    } catch {
      // The process ended while we looked.
    }
  }
  const missing = services.filter((s) => !found.some(([name]) => name === s.name)).map((s) => s.name);
  if (missing.length > 0) throw new Error(`could not find the process of ${missing.join(", ")}`);
  return services.map((s) => [s.name, (found.find(([name]) => name === s.name) as [string, number])[1]]);
}

/** The gateway answers /readyz, and every processor's durable consumer exists with a pull waiting. */
async function waitReady(gatewayUrl: string, monitor: ServerMonitor, progress: (message: string) => void): Promise<void> {
  const processors = DEFAULT_SERVICES.map((s) => s.name).filter((name) => name !== "gateway");
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let waitingFor: string[] = ["gateway", ...processors];
  while (Date.now() < deadline) {
    const gatewayReady = await fetch(`${gatewayUrl}/readyz`).then((r) => r.status === 200, () => false);
    const consumers = await monitor.consumers().catch(() => []);
    const pulling = new Set(consumers.filter((c) => c.durable && c.numWaiting > 0).map((c) => c.name));
    waitingFor = [...(gatewayReady ? [] : ["gateway"]), ...processors.filter((name) => !pulling.has(`processor-${name}`))];
    if (waitingFor.length === 0) {
      progress(`mesh ready: gateway at ${gatewayUrl}, processors ${processors.join(", ")} pulling`);
      return;
    }
    await sleep(250);
  }
  throw new Error(`not ready within ${READY_TIMEOUT_MS / 1000} s: ${waitingFor.join(", ")}`);
}
