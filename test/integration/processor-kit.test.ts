import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { buildGoTools } from "../../deploy/local/go-tools.js";

/**
 * The conformance kit (`npm run test:processor`, test/kit/processor-kit.ts) run as a user runs it, as a process,
 * against a processor written with our TypeScript runtime, the Go example (nats.go only) and the Python example (HTTP
 * only, the standard library): each must pass every scenario.
 */
const run = promisify(execFile);
const KIT = ["--import", "tsx", join(process.cwd(), "test", "kit", "processor-kit.ts")];

async function kit(args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run(process.execPath, [...KIT, ...args, "--quiet"], { timeout: 240_000 });
    return { code: 0, stdout };
  } catch (err) {
    const failed = err as { code?: number; stdout?: string };
    return { code: failed.code ?? 1, stdout: failed.stdout ?? "" };
  }
}

let goBinary = "";
beforeAll(async () => {
  goBinary = await buildGoTools();
}, 120_000);

describe("the processor conformance kit", () => {
  it("passes a processor written with the TypeScript runtime", async () => {
    const result = await kit(["--command", "SLOW_WORKER_NAME=kit-ts SLOW_WORKER_DELAY_MS=20 exec node --import tsx test/support/processes/slow-worker.ts", "--name", "kit-ts", "--reacts-to", "job/requested", "--answers", "job/done"]);
    expect(result.stdout).toMatch(/8 passed, 0 failed/);
    expect(result.code, result.stdout).toBe(0);
  }, 240_000);

  it("passes the Go example processor (nats.go only)", async () => {
    const payload = JSON.stringify({ requestOffset: 1, callId: "c{i}", name: "calculate", arguments: '{"expression":"6*7"}' });
    const result = await kit(["--command", `exec ${goBinary}`, "--name", "kit-go", "--reacts-to", "agent/tool-call-requested", "--answers", "agent/tool-call-settled", "--payload", payload]);
    expect(result.stdout).toMatch(/8 passed, 0 failed/);
    expect(result.code, result.stdout).toBe(0);
  }, 240_000);

  it("passes the Python example processor (HTTP only)", async () => {
    const payload = JSON.stringify({ requestOffset: 1, callId: "c{i}", name: "lookup_word", arguments: '{"word":"mesh"}' });
    const result = await kit(["--http", "--command", `WATCH='/kit/**' exec python3 ${join(process.cwd(), "processors", "examples", "python-http", "processor.py")}`, "--name", "kit-py", "--reacts-to", "agent/tool-call-requested", "--answers", "agent/tool-call-settled", "--payload", payload]);
    expect(result.stdout).toMatch(/8 passed, 0 failed/);
    expect(result.code, result.stdout).toBe(0);
  }, 240_000);
});
