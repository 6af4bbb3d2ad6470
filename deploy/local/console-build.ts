import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";

const CONSOLE_ROOT = fileURLToPath(new URL("../../gateway/console/", import.meta.url));
/** What the bundle is made from: the console's own files and the contract it imports. */
const SOURCES = [
  join(CONSOLE_ROOT, "src"),
  join(CONSOLE_ROOT, "index.html"),
  join(CONSOLE_ROOT, "vite.config.ts"),
  fileURLToPath(new URL("../../shared/", import.meta.url)),
  fileURLToPath(new URL("../../gateway/auth/grants.ts", import.meta.url)),
  // How it is built: a change here must rebuild what an earlier version of it built.
  fileURLToPath(import.meta.url),
];
const BUILT = join(CONSOLE_ROOT, "dist", "index.html");

function newestMtime(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/**
 * Builds the console (gateway/console) unless its bundle is newer than every file it is made from: `npm start`
 * and the browser tests call this, so a fresh clone needs no extra step. Returns whether it built.
 */
export async function ensureConsoleBuilt(): Promise<boolean> {
  if (existsSync(BUILT) && statSync(BUILT).mtimeMs >= Math.max(...SOURCES.map(newestMtime))) return false;
  // Always the production build: under vitest NODE_ENV is "test", and Vite and its React plugin would then bundle
  // React's development build and JSX (larger, slower, with this machine's source paths in it) for npm start to serve.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = "production";
  try {
    await build({ configFile: join(CONSOLE_ROOT, "vite.config.ts"), logLevel: "warn", mode: "production" });
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
  }
  return true;
}
