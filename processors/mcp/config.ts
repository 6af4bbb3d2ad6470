import { z } from "zod";
import { configFields, parseConfig } from "../../shared/service/config.js";
import { SecretKeysSchema } from "../../shared/log/secrets.js";

/** A local MCP server the processor starts itself (stdio): never named by an event, only by this configuration. */
const LocalServerSchema = z.object({
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).optional(),
  cwd: z.string().optional(),
});

export type LocalServer = z.output<typeof LocalServerSchema>;

export const mcpConfigShape = {
  /** ipaddr.js range names an MCP server's URL may reach besides the public internet (e.g. `loopback,private`). */
  MCP_ALLOWED_NETWORKS: z
    .string()
    .default("")
    .transform((value) => new Set(value.split(",").map((part) => part.trim()).filter((part) => part !== ""))),
  /** JSON: `{"<name>": {"command": "...", "args": [...], "env": {...}}}`; an agent uses one by naming it with no URL. */
  MCP_LOCAL_SERVERS: configFields.json(z.record(z.string(), LocalServerSchema)).default({}),
  /** How long connecting and listing a server's tools may take. */
  MCP_CONNECT_TIMEOUT_MS: configFields.positiveInt.default(10_000),
  /** A connection unused this long is closed (a change of its tools is then picked up at the next connection). */
  MCP_IDLE_MS: configFields.positiveInt.default(600_000),
  /** A result larger than this (as JSON) is settled as an error instead of being stored. */
  MCP_MAX_RESULT_BYTES: configFields.positiveInt.default(262_144),
  /** Opens the header values and URLs the gateway sealed (the gateway's SECRETS_KEYS). */
  SECRETS_KEYS: SecretKeysSchema.optional(),
} as const;

export type McpConfig = ReturnType<typeof loadMcpConfig>;

export function loadMcpConfig(env: NodeJS.ProcessEnv) {
  return parseConfig(mcpConfigShape, env);
}
