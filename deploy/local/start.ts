/**
 * `npm start`: the whole mesh on one machine. Starts an embedded nats-server
 * (unless NATS_URL is set), then every service as its own process, prints their
 * logs readably, and stops everything cleanly on Ctrl-C.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { configFields, parseConfig, ConfigError } from "../../shared/config.js";
import { findNatsServer, NATS_INSTALL_HELP, startNatsServer, type NatsServer } from "./nats-server.js";
import { createLineFormatter } from "./log-format.js";

const root = resolve(fileURLToPath(import.meta.url), "../../..");

/** The services `npm start` runs, each as its own process (processors join this list as they land). */
const SERVICES = [
  { name: "gateway", entry: "gateway/main.ts" },
  { name: "breaker", entry: "processors/breaker/main.ts" },
  { name: "scheduler", entry: "processors/scheduler/main.ts" },
  { name: "webhook-pusher", entry: "processors/webhook-pusher/main.ts" },
] as const;

const launcherShape = {
  NATS_URL: z.string().optional(),
  LOCAL_NATS_PORT: configFields.port.default(4223),
  AGENTMESH_DATA_DIR: z.string().default(join(root, ".data")),
  LOG_FORMAT: z.enum(["pretty", "json"]).default(process.stdout.isTTY ? "pretty" : "json"),
};

const children = new Map<string, ChildProcess>();
let nats: NatsServer | undefined;
let stopping = false;
const format = createLineFormatter();

function say(message: string): void {
  process.stdout.write(format("launcher", JSON.stringify({ level: "info", time: new Date().toISOString(), service: "launcher", msg: message })) + "\n");
}

async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(launcherShape, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`npm start: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  format.mode = config.LOG_FORMAT;

  let natsUrl = config.NATS_URL;
  if (natsUrl === undefined || natsUrl === "") {
    const bin = findNatsServer();
    if (bin === null) {
      process.stderr.write(`${NATS_INSTALL_HELP}\n`);
      process.exit(1);
    }
    const storeDir = join(config.AGENTMESH_DATA_DIR, "nats");
    mkdirSync(storeDir, { recursive: true });
    nats = await startNatsServer({
      bin,
      port: config.LOCAL_NATS_PORT,
      storeDir,
      // The banner and routine [INF] lines would drown the services' logs; warnings and errors still show.
      onLog: (line) => {
        if (!line.includes("[INF]")) process.stdout.write(`${format.plain("nats", line)}\n`);
      },
      ownProcessGroup: true,
    });
    natsUrl = nats.url;
    say(`embedded nats-server ${bin} listening on ${natsUrl} (store ${storeDir})`);
  } else {
    say(`using NATS at ${natsUrl}`);
  }

  for (const service of SERVICES) startService(service.name, service.entry, natsUrl);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void shutdown(0, signal));
}

function startService(name: string, entry: string, natsUrl: string): void {
  const child = spawn(process.execPath, ["--import", "tsx", join(root, entry)], {
    cwd: root,
    // On a laptop, webhooks to local receivers are the point; production allows no private network by default.
    env: { WEBHOOK_ALLOWED_NETWORKS: "loopback", ...process.env, NATS_URL: natsUrl },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group: Ctrl-C reaches only the launcher, which stops services before NATS.
    detached: true,
  });
  children.set(name, child);
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => process.stdout.write(`${format(name, line)}\n`));
  }
  child.on("exit", (code, signal) => {
    children.delete(name);
    if (!stopping) {
      say(`${name} exited unexpectedly (${String(code ?? signal)}); stopping the mesh`);
      void shutdown(1, `${name} exited`);
    }
  });
}

async function shutdown(exitCode: number, why: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  say(`stopping (${why})`);
  await Promise.all(
    [...children.entries()].map(
      ([name, child]) =>
        new Promise<void>((done) => {
          const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
          child.once("exit", () => {
            clearTimeout(timer);
            say(`${name} stopped`);
            done();
          });
          child.kill("SIGTERM");
        }),
    ),
  );
  if (nats !== undefined) {
    await nats.stop();
    say("nats-server stopped");
  }
  process.exit(exitCode);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`npm start: ${err instanceof Error ? err.message : String(err)}\n`);
  await shutdown(1, "start-up failed");
});
