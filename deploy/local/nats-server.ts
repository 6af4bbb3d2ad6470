import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Run a real `nats-server -js` as a child process: the embedded default of
 * `npm start`, and the server every test and benchmark starts for itself.
 */

const INSTALL_HELP = `Install it, then run the command again:
  Debian/Ubuntu:  sudo apt-get install nats-server
  macOS:          brew install nats-server
  Go toolchain:   go install github.com/nats-io/nats-server/v2@latest
  Container:      docker run -p 4222:4222 nats:2 -js   (then NATS_URL=nats://127.0.0.1:4222 npm start)
Or set NATS_URL to a NATS server with JetStream enabled, or NATS_SERVER_BIN to the binary.`;

/** Why no nats-server could be started, and how to get one. */
export function natsServerMissingHelp(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.NATS_SERVER_BIN;
  if (explicit !== undefined && explicit !== "") return `NATS_SERVER_BIN=${explicit} is not an executable file. ${INSTALL_HELP}`;
  return `nats-server was not found on PATH, nor in /usr/sbin, /usr/local/sbin or /usr/local/bin. ${INSTALL_HELP}`;
}

/** `NATS_SERVER_BIN`, else `nats-server` on PATH or in the sbin folders Debian installs it to. */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env): string | null {
  const explicit = env.NATS_SERVER_BIN;
  if (explicit !== undefined && explicit !== "") return isExecutable(explicit) ? explicit : null;
  const dirs = [...(env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, "nats-server");
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface NatsServerOptions {
  bin?: string;
  host?: string;
  /** Fixed port; by default the server picks a free one. */
  port?: number;
  /** JetStream store; by default a fresh temporary folder, removed on stop. */
  storeDir?: string;
  /** Receives every line the server logs. */
  onLog?: (line: string) => void;
  /** Run in its own process group so a terminal's Ctrl-C does not stop it before its clients. */
  ownProcessGroup?: boolean;
  /** A configuration file (e.g. with users and permissions); the command line still sets host, port and store. */
  configFile?: string;
  /** Environment for the server: its configuration may refer to variables (`$GATEWAY_PASSWORD`). */
  env?: Record<string, string>;
  /** Serve the HTTP monitoring endpoints (`/varz`, `/jsz`, ...) on this port of `host`; -1 lets the server pick a free one. Off by default. */
  monitorPort?: number;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly pid: number;
  /** The monitoring endpoints' origin (`http://host:port`), when `monitorPort` was given. */
  readonly monitorUrl?: string;
  /** SIGTERM, wait for exit (SIGKILL after 5 s), remove a temporary store. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would, and wait for exit; the store stays for a restart. */
  kill(): Promise<void>;
}

/** Start nats-server and resolve once it accepts clients. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = options.bin ?? findNatsServer();
  if (bin === null) throw new Error(natsServerMissingHelp());
  const host = options.host ?? "127.0.0.1";
  const temporary = options.storeDir === undefined;
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), "agentmesh-nats-"));
  mkdirSync(storeDir, { recursive: true });
  const portsDir = mkdtempSync(join(tmpdir(), "agentmesh-nats-ports-"));
  // -p -1 lets the server choose a free port; it reports it in the ports file.
  const args = [
    ...(options.configFile === undefined ? [] : ["-c", options.configFile]),
    "-js", "-a", host, "-p", String(options.port ?? -1),
    ...(options.monitorPort === undefined ? [] : ["-m", String(options.monitorPort)]),
    "-sd", storeDir, "--ports_file_dir", portsDir,
  ];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], detached: options.ownProcessGroup ?? false, env: { ...process.env, ...options.env } });
  const output: string[] = [];
  const onData = (chunk: Buffer): void => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (line === "") continue;
      if (output.length < 200) output.push(line);
      options.onLog?.(line);
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);

  try {
    const { port, monitorUrl } = await waitForPorts(child, portsDir, output, options.monitorPort !== undefined);
    return {
      url: `nats://${host}:${port}`,
      port,
      storeDir,
      pid: child.pid ?? -1,
      ...(monitorUrl === undefined ? {} : { monitorUrl }),
      stop: async () => {
        await stopChild(child);
        rmSync(portsDir, { recursive: true, force: true });
        if (temporary) rmSync(storeDir, { recursive: true, force: true });
      },
      kill: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once("exit", () => { resolve(); }));
        child.kill("SIGKILL");
        await exited;
      },
    };
  } catch (err) {
    await stopChild(child);
    rmSync(portsDir, { recursive: true, force: true });
    if (temporary) rmSync(storeDir, { recursive: true, force: true });
    throw err;
  }
}

function parsePortsFile(text: string): { nats?: string[]; monitoring?: string[] } | null {
  try {
    return JSON.parse(text) as { nats?: string[]; monitoring?: string[] };
  } catch {
    return null;
  }
}

async function waitForPorts(child: ChildProcess, portsDir: string, output: string[], monitoring: boolean): Promise<{ port: number; monitorUrl?: string }> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nats-server exited (${String(child.exitCode ?? child.signalCode)}):\n${output.join("\n")}`);
    }
    const file = existsSync(portsDir) ? readdirSync(portsDir).find((name) => name.endsWith(".ports")) : undefined;
    if (file !== undefined) {
      // nats-server may be part-way through writing the file: an incomplete one is read again next time.
      const ports = parsePortsFile(readFileSync(join(portsDir, file), "utf8"));
      const match = /:(\d+)$/.exec(ports?.nats?.[0] ?? "");
      const monitorUrl = ports?.monitoring?.[0];
      if (match?.[1] !== undefined && (!monitoring || monitorUrl !== undefined)) return { port: Number(match[1]), monitorUrl };
    }
    await sleep(20);
  }
  throw new Error(`nats-server did not report its port within 15 s:\n${output.join("\n")}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => { resolve(); }));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}
