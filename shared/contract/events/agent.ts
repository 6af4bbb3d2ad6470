import { z } from "zod";
import { isSealed } from "../credentials.js";

/** The agent loop's events (docs/EVENTS.md, "Agents"). One schema per event; types inferred. */

export const ToolSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "1 to 64 of A-Z a-z 0-9 _ -"),
  description: z.string().default(""),
  /** JSON Schema of the arguments. */
  parameters: z.record(z.string(), z.unknown()).default({ type: "object", properties: {} }),
});

export const AgentConfiguredSchema = z.object({
  model: z.string().min(1).optional(),
  systemPrompt: z.string().optional(),
  tools: z.array(ToolSchema).optional(),
  maxAutonomousTurns: z.number().int().positive().default(20),
  toolTimeoutSeconds: z.number().positive().default(300),
  /** The model's context window in tokens, overriding the LLM processor's table (LLM_CONTEXT_WINDOWS). */
  contextWindow: z.number().int().positive().optional(),
  /** The share of the context window a request may fill before the history is compacted (default LLM_COMPACT_AT). */
  compactAt: z.number().gt(0).max(1).optional(),
});

export const InputAddedSchema = z.object({
  role: z.enum(["user", "system", "developer"]),
  content: z.string(),
  trigger: z.enum(["auto", "none", "interrupt"]).default("auto"),
});

export const RequestStartedSchema = z.object({ model: z.string() });

export const ResponseChunkSchema = z.object({ requestOffset: z.number().int().positive(), sequence: z.number().int().nonnegative(), text: z.string() });

export const ToolCallSchema = z.object({ callId: z.string().min(1), name: z.string(), arguments: z.string() });

export const UsageSchema = z.object({
  promptTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  /** What the request cost, from the LLM processor's prices (LLM_PRICES) when it ran; absent for a model without a price. */
  costUsd: z.number().nonnegative().optional(),
  /** The model reported no usage: the LLM processor counted the request and the answer itself (gpt-tokenizer). */
  estimated: z.literal(true).optional(),
});

export const RequestResultSchema = z.discriminatedUnion("status", [
  z.object({ status: z.literal("succeeded"), text: z.string(), toolCalls: z.array(ToolCallSchema), usage: UsageSchema.nullable() }),
  z.object({ status: z.literal("failed"), error: z.string() }),
  z.object({ status: z.literal("cancelled"), reason: z.string(), partialText: z.string() }),
]);

export const RequestSettledSchema = z.object({ requestOffset: z.number().int().positive(), result: RequestResultSchema });

export const ToolCallRequestedSchema = z.object({ requestOffset: z.number().int().positive(), callId: z.string().min(1), name: z.string(), arguments: z.string() });

export const ToolCallSettledSchema = z.union([
  z.object({ callId: z.string().min(1), result: z.unknown() }).refine((v) => "result" in v, { message: "result is required" }),
  z.object({ callId: z.string().min(1), error: z.string() }),
]);

export const ToolCallTimedOutSchema = z.object({ callId: z.string().min(1) });

export const AgentPausedSchema = z.object({ reason: z.string() });

/** A server name is part of the tool names the model sees (`<server>__<tool>`). */
export const McpServerNameSchema = z.string().regex(/^[A-Za-z0-9-]{1,24}$/, "1 to 24 of A-Z a-z 0-9 -");

export const McpServerSchema = z.object({
  name: McpServerNameSchema,
  /**
   * The server's Streamable HTTP endpoint: sealed in the log, since a URL may carry a credential of its own. Without
   * one, `name` is a local (stdio) server of the mcp processor's own configuration (MCP_LOCAL_SERVERS).
   */
  url: z
    .string()
    .refine((value) => isSealed(value) || z.url({ protocol: /^https?$/ }).safeParse(value).success, "an http(s) URL")
    .optional(),
  /** Sent with every request to the server; each value is a credential, sealed in the log (shared/contract/credentials.ts). */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, "a header name"), z.string()).optional(),
});

export const McpServersConfiguredSchema = z.object({
  servers: z.array(McpServerSchema.strict()).max(16).refine((servers) => new Set(servers.map((s) => s.name)).size === servers.length, "server names must be unique"),
});

export const DiscoveredToolSchema = ToolSchema.extend({
  /** The tool's name on its server; `name` is what the model is offered. */
  mcpName: z.string().min(1),
});

export const ToolsDiscoveredSchema = z.object({
  server: McpServerNameSchema,
  /** The agent/mcp-servers-configured these tools were listed under: a later configuration replaces them. */
  configuredOffset: z.number().int().positive(),
  tools: z.array(DiscoveredToolSchema),
  /** Why the server's tools could not be listed (then `tools` is empty). */
  error: z.string().optional(),
});

export const ToolCallProgressedSchema = z.object({
  callId: z.string().min(1),
  progress: z.number(),
  total: z.number().optional(),
  message: z.string().optional(),
});

export const ContextCompactedSchema = z.object({
  /** What the model is sent in place of the messages through `throughOffset` ("" when they were dropped). */
  summary: z.string(),
  /** The last event whose messages the summary replaces; never inside a tool call and its results. */
  throughOffset: z.number().int().positive(),
  method: z.enum(["summary", "truncation"]),
  tokensBefore: z.number().int().nonnegative(),
  tokensAfter: z.number().int().nonnegative(),
  /** The summary request's own usage, counted against the budget. */
  usage: UsageSchema.nullable().default(null),
});

export const BudgetConfiguredSchema = z.object({
  maxTokens: z.number().int().positive().optional(),
  maxCostUsd: z.number().positive().optional(),
});

export type Tool = z.infer<typeof ToolSchema>;
export type AgentConfig = z.infer<typeof AgentConfiguredSchema>;
export type ToolCall = z.infer<typeof ToolCallSchema>;
export type RequestResult = z.infer<typeof RequestResultSchema>;
export type Usage = z.infer<typeof UsageSchema>;
export type McpServer = z.infer<typeof McpServerSchema>;
export type DiscoveredTool = z.infer<typeof DiscoveredToolSchema>;
