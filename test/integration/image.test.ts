import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StartedTestContainer } from "testcontainers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../shared/contract/envelope.js";
import { buildImage, podmanEnvironment, type BuiltImage } from "../../deploy/image/build.js";
import { startNatsServer, type NatsServer } from "../../deploy/local/nats-server.js";
import { request, TEST_SECRETS_KEYS, uniquePath } from "../support/gateway.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { startOtlpReceiver, type OtlpReceiver } from "../support/otlp-receiver.js";
import { freePort } from "../support/ports.js";
import { readAll, waitFor } from "../support/processors.js";

/**
 * The container image (deploy/Dockerfile), built by `npm run image`'s own code and run the way the Kubernetes
 * manifests run it: every service from the one image, as the image's non-root user, with a read-only root filesystem
 * and a tmpfs on /tmp only. The containers are started with testcontainers through podman's Docker-compatible socket
 * (../shared/CONTAINERS.md); they use the host's network, so they reach this test's nats-server, model server and
 * OTLP receiver on loopback, and the test reaches their ports the same way.
 */

const IMAGE = "localhost/agentmesh:test";
/** Every container this file starts carries it, so leftovers of a killed run can be removed by the next. */
const LABEL = "agentmesh.test";

function podmanPath(): string | undefined {
  const found = spawnSync("sh", ["-c", "command -v podman || ls /usr/bin/podman"], { encoding: "utf8" });
  return found.status === 0 ? found.stdout.trim().split("\n")[0] : undefined;
}
const podman = podmanPath();
// Skipped only where podman is not installed (a developer's machine); CI installs it (.ci/run), so there it must run.
const skipReason = podman === undefined ? "podman is not installed (apt-get install podman runc mmdebstrap; .ci/run does this)" : undefined;
if (skipReason !== undefined && process.env.CI === "true") throw new Error(`image test cannot run in CI: ${skipReason}`);
if (skipReason !== undefined) process.stderr.write(`image test skipped: ${skipReason}\n`);

const SERVICES = ["gateway", "breaker", "scheduler", "webhook-pusher", "llm", "traces", "mcp"] as const;
type Service = (typeof SERVICES)[number];
const entry = (service: Service) => (service === "gateway" ? "gateway/main.ts" : `processors/${service}/main.ts`);

let built: BuiltImage;
let work: string | undefined;
let service: ChildProcess | undefined;
let nats: NatsServer;
let model: ModelServer;
let receiver: OtlpReceiver;
/** What afterAll stops, in the order it was started (a failed start leaves the rest out). */
const servers: { close(): Promise<unknown> }[] = [];
const containers = new Map<Service, StartedTestContainer>();
const ports = new Map<Service, number>();
const logs = new Map<Service, string>();
const readyMs = new Map<Service, number>();
const buildLog: string[] = [];
const env = podmanEnvironment();

function removeLeftovers(): void {
  const ids = spawnSync("podman", ["ps", "-aq", "--filter", `label=${LABEL}`], { env, encoding: "utf8" }).stdout.trim();
  if (ids !== "") spawnSync("podman", ["rm", "-f", ...ids.split("\n")], { env });
}

/** podman's Docker API on a socket of our own, for testcontainers; stopped in afterAll. */
async function startPodmanService(): Promise<string> {
  const socket = join(work ?? tmpdir(), "podman.sock");
  service = spawn("podman", ["system", "service", "--time=0", `unix://${socket}`], { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  service.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  await waitFor(() => Promise.resolve(existsSync(socket) ? true : undefined), 20_000, `podman system service (${stderr})`);
  return socket;
}

async function startService(name: Service, extraEnv: Record<string, string>): Promise<void> {
  const { GenericContainer } = await import("testcontainers");
  /** testcontainers has no option for a read-only root filesystem; its create options carry Docker's. */
  class ReadOnlyContainer extends GenericContainer {
    constructor(image: string) {
      super(image);
      this.hostConfig.ReadonlyRootfs = true;
    }
  }
  const port = await freePort();
  ports.set(name, port);
  const listen: Record<string, string> = name === "gateway" ? { GATEWAY_HOST: "127.0.0.1", GATEWAY_PORT: String(port) } : { HEALTH_HOST: "127.0.0.1", HEALTH_PORT: String(port) };
  logs.set(name, "");
  const container = new ReadOnlyContainer(IMAGE)
    .withCommand(["node", "--import", "tsx", entry(name)])
    .withEnvironment({ NATS_URL: nats.url, LOG_LEVEL: "info", SECRETS_KEYS: TEST_SECRETS_KEYS, ...listen, ...extraEnv })
    .withNetworkMode("host")
    // The one writable place, as the manifests' emptyDir: tsx's compile cache lives there.
    .withTmpFs({ "/tmp": "rw,size=64m" })
    .withLabels({ [LABEL]: "image" })
    .withPullPolicy({ shouldPull: () => false })
    .withLogConsumer((stream) => stream.on("data", (chunk: Buffer | string) => logs.set(name, (logs.get(name) ?? "") + chunk.toString())));
  const started = Date.now();
  containers.set(name, await container.start());
  await waitFor(async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined), 60_000, `${name} ready; its log:\n${logs.get(name) ?? ""}`);
  readyMs.set(name, Date.now() - started);
}

describe.skipIf(skipReason !== undefined)("the container image", () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "agentmesh-image-test-"));
    removeLeftovers();
    built = await buildImage({ image: IMAGE, env: { ...env, IMAGE }, log: (line) => buildLog.push(line) }).catch((err: unknown) => {
      throw new Error(`npm run image failed; its output:\n${buildLog.slice(-60).join("\n")}`, { cause: err });
    });
    const socket = await startPodmanService();
    // Read by testcontainers when it first looks for a container runtime, i.e. at the first start below.
    process.env.DOCKER_HOST = `unix://${socket}`;
    process.env.TESTCONTAINERS_RYUK_DISABLED = "true";
    process.env.TESTCONTAINERS_HOST_OVERRIDE = "127.0.0.1";
    nats = await startNatsServer();
    servers.push({ close: () => nats.stop() });
    model = await startModelServer();
    servers.push(model);
    model.fallback = (req) => ({ chunks: ["echo: ", req.messages.filter((m) => m.role === "user").at(-1)?.content ?? ""] });
    receiver = await startOtlpReceiver();
    servers.push(receiver);
    // One at a time: each service's start-to-ready is its own, not six fighting over two cores. The gateway first,
    // as in a deployment: it makes the stream the processors read.
    await startService("gateway", { AUTH: "off" });
    await startService("breaker", {});
    await startService("scheduler", {});
    await startService("webhook-pusher", {});
    await startService("llm", { LLM_BASE_URL: model.baseURL, LLM_MODEL: "test-model" });
    await startService("traces", { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint });
    await startService("mcp", {});
    const mb = (built.sizeBytes / 1e6).toFixed(0);
    process.stdout.write(`image: ${built.image} on ${built.base}: ${mb} MB, built in ${(built.buildMs / 1000).toFixed(1)} s; container start to /readyz: ${SERVICES.map((s) => `${s} ${readyMs.get(s) ?? "?"} ms`).join(", ")}\n`);
  }, 20 * 60_000);

  afterAll(async () => {
    await Promise.allSettled([...containers.values()].map((c) => c.stop({ timeout: 5_000 })));
    if (podman !== undefined) removeLeftovers();
    service?.kill("SIGTERM");
    await Promise.allSettled(servers.map((s) => s.close()));
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it("runs every service as the image's non-root user on a read-only root filesystem", async () => {
    expect([...containers.keys()].sort()).toEqual([...SERVICES].sort());
    for (const [name, container] of containers) {
      const id = await container.exec(["id", "-u"]);
      expect(id.output.trim(), name).toBe("1000");
      expect((await container.exec(["touch", "/app/written"])).exitCode, `${name}: /app is writable`).not.toBe(0);
      expect((await container.exec(["touch", "/written"])).exitCode, `${name}: / is writable`).not.toBe(0);
      expect((await container.exec(["touch", "/tmp/written"])).exitCode, `${name}: /tmp`).toBe(0);
    }
  });

  it("answers an agent input appended over HTTP with the model's echo, and traces the turn", async () => {
    const gateway = `http://127.0.0.1:${ports.get("gateway") ?? 0}`;
    const path = `${uniquePath("image")}/agent`;
    const appended = await request(`${gateway}/streams${path}`, { body: { type: "agent/input-added", payload: { role: "user", content: "hello from the image" } } });
    expect(appended.status).toBe(201);
    const events = await waitFor(async () => {
      const all = await readAll(gateway, path);
      return all.some((e) => e.type === "agent/llm-request-settled") ? all : undefined;
    }, 30_000, `the llm's answer; its log:\n${logs.get("llm") ?? ""}`);
    expect(events.map((e) => e.type)).toEqual(["agent/input-added", "agent/llm-request-started", "agent/llm-request-settled"]);
    const settled = events[2] as EventEnvelope;
    expect((settled.payload as { result: { status: string; text: string } }).result).toMatchObject({ status: "succeeded", text: "echo: hello from the image" });
    expect(model.requests.at(-1)?.messages).toEqual([{ role: "user", content: "hello from the image" }]);
    // The traces processor, in its container, sent the settled turn to the collector.
    await waitFor(() => Promise.resolve(receiver.spans.some((s) => s.name === `invoke_agent ${path}`) ? true : undefined), 30_000, `the turn's trace; the traces log:\n${logs.get("traces") ?? ""}`);
  });

  it("starts each service within seconds of its container starting", () => {
    for (const name of SERVICES) expect(readyMs.get(name), name).toBeLessThan(30_000);
  });
});
