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
  const server = await startNatsServer();
  project.provide("natsUrl", server.url);
  return () => server.stop();
}
