import { z } from "zod";

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
});

export const InputAddedSchema = z.object({
  role: z.enum(["user", "system", "developer"]),
  content: z.string(),
  trigger: z.enum(["auto", "none", "interrupt"]).default("auto"),
});

export const RequestStartedSchema = z.object({ model: z.string() });

export const ResponseChunkSchema = z.object({ requestOffset: z.number().int().positive(), sequence: z.number().int().nonnegative(), text: z.string() });

export const ToolCallSchema = z.object({ callId: z.string().min(1), name: z.string(), arguments: z.string() });

export const UsageSchema = z.object({ promptTokens: z.number().int().nonnegative(), completionTokens: z.number().int().nonnegative() });

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

export type Tool = z.infer<typeof ToolSchema>;
export type AgentConfig = z.infer<typeof AgentConfiguredSchema>;
export type ToolCall = z.infer<typeof ToolCallSchema>;
export type RequestResult = z.infer<typeof RequestResultSchema>;
export type Usage = z.infer<typeof UsageSchema>;
