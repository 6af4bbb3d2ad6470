import { execFile } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { projectRoot } from "./mesh.js";

const run = promisify(execFile);

export const GO_INSTALL_HELP = `Building the Go example needs Go and the NATS Go client from Debian:
  sudo apt-get install golang-go golang-github-nats-io-go-nats-dev`;

/**
 * Build processors/examples/go-tools offline, with Debian's Go and its packaged
 * NATS client (GOPATH mode, no module download). Returns the binary's path.
 */
export async function buildGoTools(outDir = join(projectRoot, ".data", "bin")): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const binary = join(outDir, "go-tools");
  try {
    await run("go", ["build", "-o", binary, "./processors/examples/go-tools"], {
      cwd: projectRoot,
      env: { ...process.env, GO111MODULE: "off", GOPATH: process.env.GOPATH ?? "/usr/share/gocode", GOFLAGS: "-mod=mod", GOCACHE: process.env.GOCACHE ?? join(outDir, ".gocache") },
    });
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new Error(`${GO_INSTALL_HELP}\n(go build failed: ${detail})`, { cause: err });
  }
  return binary;
}
