import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT, stopChild } from "./gateway-process.js";

/** The Durable Streams reference server, running as a child process with a temporary file store. */
export interface ReferenceServer {
  /** Its origin; streams live at any path below it. */
  readonly url: string;
  readonly pid: number;
  /** SIGTERM, wait for exit (SIGKILL after 10 s), remove the data folder. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;

export async function startReferenceServer(onLog: (line: string) => void): Promise<ReferenceServer> {
  // tmpdir() is where startNatsServer keeps the JetStream store too, so both servers write to the same disk.
  const dataDir = mkdtempSync(join(tmpdir(), "agentmesh-ds-reference-"));
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "test/bench/support/reference-server-main.ts")], {
    cwd: REPO_ROOT,
    env: { ...process.env, DS_DATA_DIR: dataDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stop = async (): Promise<void> => {
    await stopChild(child);
    rmSync(dataDir, { recursive: true, force: true });
  };
  const pid = child.pid;
  if (pid === undefined) {
    await stop();
    throw new Error("the reference server process did not start");
  }
  child.stderr.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line !== "") onLog(line);
  });

  try {
    const url = await new Promise<string>((resolve, reject) => {
      let buffered = "";
      const timer = setTimeout(() => { reject(new Error(`the reference server did not start listening within ${START_TIMEOUT_MS / 1000} s`)); }, START_TIMEOUT_MS);
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the reference server exited during start (${String(code ?? signal)})`));
      });
      child.stdout.on("data", (chunk: Buffer) => {
        buffered += chunk.toString("utf8");
        let newline = buffered.indexOf("\n");
        while (newline >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          newline = buffered.indexOf("\n");
          // The server logs its store recovery on stdout too; only the announcement is JSON.
          if (line.startsWith("{")) {
            clearTimeout(timer);
            resolve((JSON.parse(line) as { url: string }).url);
          } else if (line !== "") onLog(line);
        }
      });
    });
    return { url, pid, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
