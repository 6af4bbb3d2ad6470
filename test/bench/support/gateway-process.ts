import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

/** The repository root, so the gateway runs from there whatever the caller's cwd. */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export interface GatewayProcess {
  readonly url: string;
  readonly pid: number;
  /** Resident set size of the gateway process, from /proc/<pid>/status (VmRSS). */
  rssBytes(): number;
  /** SIGTERM (the gateway drains and exits 0, writing a CPU profile if asked), SIGKILL after 10 s. */
  stop(): Promise<void>;
}

export interface GatewayProcessOptions {
  natsUrl: string;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  env?: Record<string, string>;
  onLog: (line: string) => void;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  if (typeof address !== "object" || address === null) throw new Error("could not pick a free port");
  return address.port;
}

/**
 * Start `gateway/main.ts` as its own process, exactly as it runs in
 * production, so its CPU and memory are separate from the load generator's.
 */
export async function startGatewayProcess(options: GatewayProcessOptions): Promise<GatewayProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), "--import", "tsx", "gateway/main.ts"], {
    cwd: REPO_ROOT,
    env: { ...process.env, NATS_URL: options.natsUrl, GATEWAY_PORT: String(port), LOG_LEVEL: "warn", AUTH: "off", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const forward = (chunk: Buffer): void => {
    for (const line of chunk.toString("utf8").split("\n")) if (line !== "") options.onLog(line);
  };
  child.stdout.on("data", forward);
  child.stderr.on("data", forward);
  const pid = child.pid;
  if (pid === undefined) throw new Error("the gateway process did not start");
  const url = `http://127.0.0.1:${port}`;
  const gateway: GatewayProcess = { url, pid, rssBytes: () => rssOf(pid), stop: () => stopChild(child) };
  try {
    await waitReady(child, url);
  } catch (err) {
    await gateway.stop();
    throw err;
  }
  return gateway;
}

async function waitReady(child: ChildProcess, url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the gateway exited during start (${String(child.exitCode ?? child.signalCode)})`);
    const ready = await fetch(`${url}/readyz`).then((r) => r.status === 200, () => false);
    if (ready) return;
    await sleep(100);
  }
  throw new Error("the gateway was not ready within 30 s");
}

export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (match?.[1] === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => { resolve(); }));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}
