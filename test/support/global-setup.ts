import type { TestProject } from "vitest/node";
import { ensureConsoleBuilt } from "../../deploy/local/console-build.js";
import { startNatsServer } from "../../deploy/local/nats-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    natsUrl: string;
  }
}

/**
 * One real nats-server for the whole run, on a free port with a temporary
 * store, unless NATS_URL names one. Tests isolate themselves by stream path.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Every gateway a test starts serves the console as npm start would: built once, before any starts.
  await ensureConsoleBuilt();
  const external = process.env.NATS_URL;
  if (external !== undefined && external !== "") {
    project.provide("natsUrl", external);
    return async () => {};
  }
  // Run once per vitest project: every project gets the same server, stopped after the last one is done.
  shared ??= { server: startNatsServer(), users: 0 };
  const run = shared;
  run.users += 1;
  const server = await run.server;
  project.provide("natsUrl", server.url);
  return async () => {
    run.users -= 1;
    if (run.users === 0) await server.stop();
  };
}

let shared: { server: ReturnType<typeof startNatsServer>; users: number } | undefined;
