import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freePort } from "../support/ports.js";

const root = join(import.meta.dirname, "../..");

function launch(env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", "deploy/local/start.ts"], {
    cwd: root,
    env: { ...process.env, NATS_URL: "", LOG_FORMAT: "json", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => { resolve(code); }));
  return { child, exited, output: () => output };
}

async function waitForReady(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await fetch(url).then((r) => r.status === 200, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms`);
}

async function waitForOutput(output: () => string, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!output().includes(text)) {
    if (Date.now() > deadline) throw new Error(`"${text}" not seen in ${timeoutMs} ms:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => { socket.destroy(); resolve(true); });
    socket.once("error", () => { resolve(false); });
  });
}

describe("npm start", () => {
  it("starts an embedded nats-server and the gateway, serves the README's curl lines, and stops cleanly on SIGINT", async () => {
    const [gatewayPort, natsPort] = [await freePort(), await freePort()];
    const dataDir = mkdtempSync(join(tmpdir(), "agentmesh-start-"));
    const mesh = launch({ GATEWAY_PORT: String(gatewayPort), LOCAL_NATS_PORT: String(natsPort), AGENTMESH_DATA_DIR: dataDir });
    try {
      const base = `http://127.0.0.1:${gatewayPort}`;
      await waitForReady(`${base}/readyz`, 20_000);
      // Processors react to events appended after they start (the README says to wait for them).
      for (const name of ["breaker", "scheduler", "webhook-pusher", "llm", "traces", "mcp"]) await waitForOutput(mesh.output, `${name} processor running`, 20_000);
      const appended = await fetch(`${base}/streams/agents/bot-1`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "agent/input-added", payload: { role: "user", content: "hi" } }),
      });
      expect(appended.status).toBe(201);
      // The LLM processor answers with the offline echo provider, as the README promises.
      const deadline = Date.now() + 20_000;
      let history: { events: { type: string; payload: { result?: { text?: string } } }[] } = { events: [] };
      while (Date.now() < deadline && !history.events.some((e) => e.type === "agent/llm-request-settled")) {
        history = (await (await fetch(`${base}/streams/agents/bot-1`)).json()) as typeof history;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(history.events.map((e) => e.type)).toEqual(["agent/input-added", "agent/llm-request-started", "agent/llm-request-settled"]);
      expect(history.events[2]?.payload.result?.text).toBe("echo: hi");
      expect(await portOpen(natsPort)).toBe(true);

      mesh.child.kill("SIGINT");
      expect(await mesh.exited).toBe(0);
      expect(mesh.output()).toContain("gateway stopped");
      for (const name of ["breaker", "scheduler", "webhook-pusher", "llm", "traces", "mcp"]) expect(mesh.output()).toContain(`${name} processor stopped`);
      expect(await portOpen(natsPort)).toBe(false);
      expect(await portOpen(gatewayPort)).toBe(false);
    } finally {
      mesh.child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it("checks every service's configuration before starting anything, naming each bad variable once", async () => {
    const natsPort = await freePort();
    const mesh = launch({ GATEWAY_PORT: "abc", LOG_LEVEL: "verbose", LOCAL_NATS_PORT: String(natsPort), AGENTMESH_DATA_DIR: join(tmpdir(), "agentmesh-never-created") });
    expect(await mesh.exited).toBe(2);
    const output = mesh.output();
    expect(output).toContain("GATEWAY_PORT");
    // Read by all six services, reported once with their names.
    expect(output.match(/LOG_LEVEL/g)).toHaveLength(1);
    expect(output).toMatch(/LOG_LEVEL: .*\(gateway, breaker, scheduler, webhook-pusher, llm, traces, mcp\)/);
    expect(output).not.toContain("embedded nats-server listening");
    expect(await portOpen(natsPort)).toBe(false);
  }, 30_000);

  it("says how to install nats-server when it is missing, and exits non-zero", async () => {
    const mesh = launch({ NATS_SERVER_BIN: "/nonexistent/nats-server" });
    expect(await mesh.exited).toBe(1);
    expect(mesh.output()).toContain("apt-get install nats-server");
    expect(mesh.output()).toContain("brew install nats-server");
    expect(mesh.output()).toContain("NATS_SERVER_BIN=/nonexistent/nats-server is not an executable file");
  }, 30_000);
});
