import type { EventEnvelope } from "../contract/envelope.js";
import { SubscriptionConfiguredSchema, SubscriptionRemovedSchema, type SubscriptionConfigured } from "../contract/events/subscriptions.js";
import { SubscriptionEventTypes } from "../contract/wire.js";

/**
 * A stream's webhook subscriptions as its log states them, with what the log
 * knows of their deliveries (failures, disabling). URLs and secrets stay as
 * stored: sealed values are never opened here. How far each delivery consumer
 * has got is live state, not the log's: the processors API shows it.
 */
export interface SubscriptionView {
  slug: string;
  url: SubscriptionConfigured["url"];
  types: string[] | null;
  signed: boolean;
  configuredAt: { offset: number; createdAt: string };
  /** Removed by a person, or disabled by the pusher (a 410, an address refused). */
  ended: { offset: number; createdAt: string; reason: string } | null;
  failures: number;
  lastFailure: { offset: number; eventOffset: number; attempts: number; error: string; status?: number } | null;
}

export interface SubscriptionsState {
  subscriptions: Record<string, SubscriptionView>;
}

export function initialSubscriptions(): SubscriptionsState {
  return { subscriptions: {} };
}

function slugOf(payload: unknown): string | null {
  if (typeof payload !== "object" || payload === null || !("slug" in payload)) return null;
  return typeof payload.slug === "string" ? payload.slug : null;
}

function numberField(payload: unknown, name: string): number | undefined {
  if (typeof payload !== "object" || payload === null) return undefined;
  const value = (payload as Record<string, unknown>)[name];
  return typeof value === "number" ? value : undefined;
}

function stringField(payload: unknown, name: string): string | undefined {
  if (typeof payload !== "object" || payload === null) return undefined;
  const value = (payload as Record<string, unknown>)[name];
  return typeof value === "string" ? value : undefined;
}

export function reduceSubscriptions(state: SubscriptionsState, event: EventEnvelope): SubscriptionsState {
  const at = { offset: event.offset, createdAt: event.createdAt };
  switch (event.type) {
    case SubscriptionEventTypes.configured: {
      const configured = SubscriptionConfiguredSchema.safeParse(event.payload);
      if (!configured.success) return state;
      const { slug, url, types, secret } = configured.data;
      const view: SubscriptionView = { slug, url, types: types ?? null, signed: secret !== undefined, configuredAt: at, ended: null, failures: 0, lastFailure: null };
      return { subscriptions: { ...state.subscriptions, [slug]: view } };
    }
    case SubscriptionEventTypes.removed:
    case SubscriptionEventTypes.disabled: {
      const slug = event.type === SubscriptionEventTypes.removed ? (SubscriptionRemovedSchema.safeParse(event.payload).data?.slug ?? null) : slugOf(event.payload);
      const current = slug === null ? undefined : state.subscriptions[slug];
      if (current === undefined || current.ended !== null) return state;
      const reason = event.type === SubscriptionEventTypes.removed ? "removed" : `disabled: ${stringField(event.payload, "reason") ?? "by the pusher"}`;
      return { subscriptions: { ...state.subscriptions, [current.slug]: { ...current, ended: { ...at, reason } } } };
    }
    case SubscriptionEventTypes.deliveryFailed: {
      const slug = slugOf(event.payload);
      const current = slug === null ? undefined : state.subscriptions[slug];
      if (current === undefined) return state;
      const status = numberField(event.payload, "status");
      const lastFailure = {
        offset: event.offset,
        eventOffset: numberField(event.payload, "offset") ?? 0,
        attempts: numberField(event.payload, "attempts") ?? 0,
        error: stringField(event.payload, "error") ?? "",
        ...(status === undefined ? {} : { status }),
      };
      return { subscriptions: { ...state.subscriptions, [current.slug]: { ...current, failures: current.failures + 1, lastFailure } } };
    }
    default:
      return state;
  }
}
