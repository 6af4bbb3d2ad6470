import { spawn } from "node:child_process";
import { REPO_ROOT, stopChild } from "./gateway-process.js";

/** A server the benchmark runs as its own process, so it shares no event loop with the load generator. */
export interface ChildServer {
  /** Its origin. */
  readonly url: string;
  readonly pid: number;
  /** SIGTERM, wait for exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

export interface ChildServerOptions {
  /** What the logs and errors call it. */
  name: string;
  /** A TypeScript entry, relative to the repository root, that prints one JSON line `{"url": ...}` on stdout once listening. */
  script: string;
  env?: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  onLog: (line: string) => void;
}

const START_TIMEOUT_MS = 30_000;

/** Start `script` under tsx and wait for its announcement; any other output line goes to `onLog`. */
export async function startChildServer(options: ChildServerOptions): Promise<ChildServer> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), "--import", "tsx", options.script], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stop = (): Promise<void> => stopChild(child);
  const pid = child.pid;
  if (pid === undefined) {
    await stop();
    throw new Error(`the ${options.name} process did not start`);
  }
  child.stderr.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line !== "") options.onLog(line);
  });

  try {
    const url = await new Promise<string>((resolve, reject) => {
      let buffered = "";
      const timer = setTimeout(() => { reject(new Error(`the ${options.name} did not start listening within ${START_TIMEOUT_MS / 1000} s`)); }, START_TIMEOUT_MS);
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the ${options.name} exited during start (${String(code ?? signal)})`));
      });
      child.stdout.on("data", (chunk: Buffer) => {
        buffered += chunk.toString("utf8");
        let newline = buffered.indexOf("\n");
        while (newline >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          newline = buffered.indexOf("\n");
          // A server may log on stdout too; only the announcement is JSON.
          if (line.startsWith("{")) {
            clearTimeout(timer);
            resolve((JSON.parse(line) as { url: string }).url);
          } else if (line !== "") options.onLog(line);
        }
      });
    });
    return { url, pid, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
