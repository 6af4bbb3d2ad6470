/**
 * `npm run processor -- <name>`: run one processor alone (as a deployment
 * would), with the same environment variables as under `npm start`.
 */
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(import.meta.url), "../../..");
const processorsDir = join(root, "processors");
const available = readdirSync(processorsDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(processorsDir, entry.name, "main.ts")))
  .map((entry) => entry.name);

const name = process.argv[2];
if (name === undefined || !available.includes(name)) {
  process.stderr.write(`usage: npm run processor -- <name>\nprocessors: ${available.join(", ")}\n`);
  process.exit(2);
}
await import(join(processorsDir, name, "main.ts"));
