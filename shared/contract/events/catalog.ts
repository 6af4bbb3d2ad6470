import type { z } from "zod";
import { AgentEventTypes, ScheduleEventTypes, SubscriptionEventTypes, SystemEventTypes } from "../wire.js";
import { AgentConfiguredSchema, AgentPausedSchema, BudgetConfiguredSchema, ContextCompactedSchema, McpServersConfiguredSchema, ToolCallProgressedSchema, ToolsDiscoveredSchema, InputAddedSchema, RequestSettledSchema, RequestStartedSchema, ResponseChunkSchema, ToolCallRequestedSchema, ToolCallSettledSchema, ToolCallTimedOutSchema } from "./agent.js";
import { ScheduleAddedSchema, ScheduleCancelledSchema } from "./schedules.js";
import { BreakerConfiguredSchema, ErrorOccurredSchema, InboundConfiguredSchema, StreamForkedSchema, StreamPausedSchema, StreamResumedSchema, WebhookReceivedSchema } from "./stream.js";
import { SubscriptionConfiguredSchema, SubscriptionRemovedSchema } from "./subscriptions.js";

/**
 * Every event type this repository defines, with its payload schema: what a
 * person composing an event by hand (the console's editor) is checked against
 * before anything is sent. The gateway checks only what it must store safely
 * (CheckedPayloadSchemas); processors parse the rest as they reduce.
 */
export const KnownPayloadSchemas: Readonly<Record<string, z.ZodType>> = {
  [AgentEventTypes.configured]: AgentConfiguredSchema,
  [AgentEventTypes.inputAdded]: InputAddedSchema,
  [AgentEventTypes.requestStarted]: RequestStartedSchema,
  [AgentEventTypes.responseChunk]: ResponseChunkSchema,
  [AgentEventTypes.requestSettled]: RequestSettledSchema,
  [AgentEventTypes.toolCallRequested]: ToolCallRequestedSchema,
  [AgentEventTypes.toolCallSettled]: ToolCallSettledSchema,
  [AgentEventTypes.toolCallTimedOut]: ToolCallTimedOutSchema,
  [AgentEventTypes.paused]: AgentPausedSchema,
  [AgentEventTypes.mcpServersConfigured]: McpServersConfiguredSchema,
  [AgentEventTypes.toolsDiscovered]: ToolsDiscoveredSchema,
  [AgentEventTypes.toolCallProgressed]: ToolCallProgressedSchema,
  [AgentEventTypes.contextCompacted]: ContextCompactedSchema,
  [AgentEventTypes.budgetConfigured]: BudgetConfiguredSchema,
  [SystemEventTypes.paused]: StreamPausedSchema,
  [SystemEventTypes.resumed]: StreamResumedSchema,
  [SystemEventTypes.breakerConfigured]: BreakerConfiguredSchema,
  [SystemEventTypes.errorOccurred]: ErrorOccurredSchema,
  [SystemEventTypes.inboundConfigured]: InboundConfiguredSchema,
  [SystemEventTypes.webhookReceived]: WebhookReceivedSchema,
  [SystemEventTypes.forked]: StreamForkedSchema,
  [ScheduleEventTypes.added]: ScheduleAddedSchema,
  [ScheduleEventTypes.cancelled]: ScheduleCancelledSchema,
  [SubscriptionEventTypes.configured]: SubscriptionConfiguredSchema,
  [SubscriptionEventTypes.removed]: SubscriptionRemovedSchema,
};
