import { AgentEventTypes, SubscriptionEventTypes, SystemEventTypes } from "../wire.js";

/**
 * The payload fields that hold an offset of the same stream, by event type: what a fork translates to the offsets
 * its copies got, beside `source.causationOffset` (docs/ARCHITECTURE.md, "Forks"). A new event type that refers to
 * another event by offset is listed here, or its forks point at the wrong event.
 */
export const PayloadOffsetFields: Readonly<Record<string, readonly string[]>> = {
  [AgentEventTypes.responseChunk]: ["requestOffset"],
  [AgentEventTypes.requestSettled]: ["requestOffset"],
  [AgentEventTypes.toolCallRequested]: ["requestOffset"],
  [AgentEventTypes.toolsDiscovered]: ["configuredOffset"],
  [AgentEventTypes.contextCompacted]: ["throughOffset"],
  [SystemEventTypes.paused]: ["triggerOffset"],
  [SystemEventTypes.errorOccurred]: ["offset"],
  // The webhook pusher's: the event whose delivery failed, the event at which a 410 ended the subscription.
  [SubscriptionEventTypes.deliveryFailed]: ["offset"],
  [SubscriptionEventTypes.disabled]: ["offset"],
};
