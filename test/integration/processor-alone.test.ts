import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { freePort } from "../support/ports.js";

const root = join(import.meta.dirname, "../..");

describe("npm run processor -- <name>", () => {
  it.each(["breaker", "scheduler", "webhook-pusher", "llm", "traces"])("runs %s alone with its health endpoints and drains on SIGTERM", async (name) => {
    const port = await freePort();
    const child = spawn(process.execPath, ["--import", "tsx", "deploy/local/processor.ts", name], {
      cwd: root,
      env: { ...process.env, NATS_URL: inject("natsUrl"), HEALTH_PORT: String(port), LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => { resolve(code); }));
    try {
      const deadline = Date.now() + 20_000;
      let ready = false;
      while (!ready && Date.now() < deadline) {
        ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
        if (!ready) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ready, output).toBe(true);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(output).toContain(`${name} processor stopped`);
    } finally {
      child.kill("SIGKILL");
    }
  }, 40_000);
});
