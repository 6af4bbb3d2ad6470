import { createHash } from "node:crypto";
import type { StreamPath } from "../../shared/contract/subjects.js";

export const SUBSCRIPTION_BUCKET = "agentmesh-webhook-subscriptions";

/** One subscription as the index knows it: a cache of the stream's subscription events. */
export interface SubscriptionEntry {
  path: StreamPath;
  slug: string;
  url: string;
  types: string[] | null;
  secret: string | null;
  /** Offset of the subscription event this entry reflects; older events never overwrite it. */
  offset: number;
  /** False once removed or disabled. */
  active: boolean;
  /** The durable consumer that delivers it: one message in flight across all replicas keeps deliveries in order. */
  consumer: string;
}

export function subscriptionConsumerName(path: StreamPath, slug: string): string {
  return `webhook-${createHash("sha256").update(`${path}|${slug}`).digest("hex").slice(0, 24)}`;
}
