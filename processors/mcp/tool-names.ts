import { createHash } from "node:crypto";

/** The model-facing tool name limit (shared/contract/events/agent.ts ToolSchema). */
const MAX_NAME = 64;

function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 8);
}

/**
 * The names the model is offered for one server's tools: `<server>__<tool>`, with characters a model API refuses
 * replaced by `_`, and a hash of the tool's own name where that shortening or replacing made two names meet.
 * Server names have no `_`, so two servers' tools never share a name.
 */
export function exposedToolNames(server: string, mcpNames: readonly string[]): Map<string, string> {
  const exposed = new Map<string, string>();
  const taken = new Set<string>();
  for (const mcpName of mcpNames) {
    let name = `${server}__${mcpName.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    if (name.length > MAX_NAME || taken.has(name)) name = `${name.slice(0, MAX_NAME - 9)}_${shortHash(mcpName)}`;
    taken.add(name);
    exposed.set(mcpName, name);
  }
  return exposed;
}
