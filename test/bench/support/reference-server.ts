import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startChildServer, type ChildServer } from "./child-server.js";

/** The Durable Streams reference server, running as a child process with a temporary file store. */
export interface ReferenceServer extends ChildServer {
  /** SIGTERM, wait for exit (SIGKILL after 10 s), remove the data folder. */
  stop(): Promise<void>;
}

export async function startReferenceServer(onLog: (line: string) => void): Promise<ReferenceServer> {
  // tmpdir() is where startNatsServer keeps the JetStream store too, so both servers write to the same disk.
  const dataDir = mkdtempSync(join(tmpdir(), "agentmesh-ds-reference-"));
  const removeData = (): void => { rmSync(dataDir, { recursive: true, force: true }); };
  let server: ChildServer;
  try {
    server = await startChildServer({ name: "reference server", script: "test/bench/support/reference-server-main.ts", env: { DS_DATA_DIR: dataDir }, onLog });
  } catch (err) {
    removeData();
    throw err;
  }
  return {
    url: server.url,
    pid: server.pid,
    stop: async () => {
      await server.stop();
      removeData();
    },
  };
}
