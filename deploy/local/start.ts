/**
 * `npm start`: the whole mesh on one machine. Starts an embedded nats-server
 * (unless NATS_URL is set), then every service as its own process, prints their
 * logs readably, and stops everything cleanly on Ctrl-C.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ConfigError, configFields, parseConfig } from "../../shared/service/config.js";
import { createLineFormatter } from "./log-format.js";
import { ensureConsoleBuilt } from "./console-build.js";
import { DEFAULT_SERVICES, projectRoot, startMesh, type Mesh } from "./mesh.js";

const launcherShape = {
  NATS_URL: z.string().optional(),
  LOCAL_NATS_PORT: configFields.port.default(4223),
  AGENTMESH_DATA_DIR: z.string().default(join(projectRoot, ".data")),
  LOG_FORMAT: z.enum(["pretty", "json"]).default(process.stdout.isTTY ? "pretty" : "json"),
};

/** AUTH=off on a laptop unless tokens are configured (AUTH_JWT_SECRET or AUTH_JWKS_URL) or AUTH is set. */
function authDefault(env: NodeJS.ProcessEnv): Record<string, string> {
  const configured = [env.AUTH, env.AUTH_JWT_SECRET, env.AUTH_JWKS_URL].some((v) => v !== undefined && v !== "");
  return configured ? {} : { AUTH: "off" };
}

/** A sealing key for this data directory, made once (mode 0600) unless SECRETS_KEYS is given. */
function secretsDefault(dataDir: string, env: NodeJS.ProcessEnv): Record<string, string> {
  if (env.SECRETS_KEYS !== undefined && env.SECRETS_KEYS !== "") return {};
  const file = join(dataDir, "secrets-keys");
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, `local:${randomBytes(32).toString("base64")}\n`, { mode: 0o600, flag: "wx" });
  }
  return { SECRETS_KEYS: readFileSync(file, "utf8").trim() };
}

const format = createLineFormatter();
let mesh: Mesh | undefined;
let stopping = false;

function say(message: string): void {
  process.stdout.write(format("launcher", JSON.stringify({ level: "info", time: new Date().toISOString(), service: "launcher", msg: message })) + "\n");
}

async function shutdown(exitCode: number, why: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  say(`stopping (${why})`);
  await mesh?.stop();
  say("stopped");
  process.exit(exitCode);
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
  if (await ensureConsoleBuilt()) say("built the console (gateway/console/dist)");
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void shutdown(0, signal));
  mesh = await startMesh({
    ...(config.NATS_URL === undefined || config.NATS_URL === "" ? {} : { natsUrl: config.NATS_URL }),
    natsPort: config.LOCAL_NATS_PORT,
    dataDir: config.AGENTMESH_DATA_DIR,
    services: DEFAULT_SERVICES,
    // On a laptop, webhooks to local receivers are the point; production allows no private network by default.
    // AUTH=off only when nothing configures tokens: a secret or a JWKS URL turns bearer tokens on, as the
    // README says. SECRETS_KEYS defaults to a key kept in the data directory, so sealed secrets open after a restart.
    env: { WEBHOOK_ALLOWED_NETWORKS: "loopback", MCP_ALLOWED_NETWORKS: "loopback", ...authDefault(process.env), ...secretsDefault(config.AGENTMESH_DATA_DIR, process.env), ...process.env },
    onLine: (service, line) => process.stdout.write(`${format(service, line)}\n`),
    // The banner and routine [INF] lines would drown the services' logs; warnings and errors still show.
    onNatsLine: (line) => {
      if (!line.includes("[INF]")) process.stdout.write(`${format.plain("nats", line)}\n`);
    },
    onUnexpectedExit: (service, code, signal) => {
      say(`${service} exited unexpectedly (${String(code ?? signal)}); stopping the mesh`);
      void shutdown(1, `${service} exited`);
    },
  });
  say(`console: http://localhost:${process.env.GATEWAY_PORT ?? "8080"}/console/`);
  say(config.NATS_URL === undefined || config.NATS_URL === "" ? `embedded nats-server listening on ${mesh.natsUrl} (store ${join(config.AGENTMESH_DATA_DIR, "nats")})` : `using NATS at ${mesh.natsUrl}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`npm start: ${err instanceof Error ? err.message : String(err)}\n`);
  // 2, as for the launcher's own variables: nothing was started.
  process.exit(err instanceof ConfigError ? 2 : 1);
});
