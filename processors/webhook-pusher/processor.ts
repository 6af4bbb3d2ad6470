import { AckPolicy, DeliverPolicy, JetStreamApiError } from "@nats-io/jetstream";
import type { EventEnvelope, EventInput } from "../../shared/contract/envelope.js";
import { StreamForkedSchema } from "../../shared/contract/events/stream.js";
import { getEvent } from "../../shared/log/read.js";
import type { Logger } from "../../shared/service/logger.js";
import { initialSubscriptions, reduceSubscriptions, type SubscriptionsState } from "../../shared/state/subscriptions.js";
import type { LogIndex } from "../../shared/log/log-index.js";
import type { Nats } from "../../shared/nats/connection.js";
import { TerminalError } from "../runtime/errors.js";
import type { Processor } from "../runtime/runtime.js";
import { openSecret, type SecretBox } from "../../shared/log/secrets.js";
import { eventsSubject, slugKeyOf, type StreamPath } from "../../shared/contract/subjects.js";
import type { AddressGuard } from "../../shared/outbound/address-guard.js";
import { SubscriptionConfiguredSchema, SubscriptionRemovedSchema } from "../../shared/contract/events/subscriptions.js";
import { SubscriptionEventTypes, ProcessorNames, SystemEventTypes } from "../../shared/contract/wire.js";
import { subscriptionConsumerName, type SubscriptionEntry } from "./subscriptions.js";

export const WEBHOOK_PUSHER_NAME = ProcessorNames.webhookPusher;

export interface PusherDeps {
  nats: Nats;
  index: LogIndex<SubscriptionEntry>;
  guard: AddressGuard;
  /** Opens the secrets the gateway sealed. */
  secrets: SecretBox | null;
  /** How long a delivery may take; the consumer's ack wait must exceed it. */
  timeoutMs: number;
}

/** A sealed field of the subscription in clear, or why it cannot be opened here (a key this pusher lacks). */
function openField(secrets: SecretBox | null, entry: SubscriptionEntry, field: "url" | "secret"): { value: string; refusal: string | null } {
  const stored = entry[field];
  if (stored === null) return { value: "", refusal: null };
  try {
    return { value: openSecret(secrets, stored, entry.path, SubscriptionEventTypes.configured, field), refusal: null };
  } catch (err) {
    return { value: "", refusal: err instanceof Error ? err.message : `the ${field} does not open` };
  }
}

async function ensureConsumer(nats: Nats, name: string, path: StreamPath, fromOffset: number, ackWaitMs: number): Promise<void> {
  try {
    await nats.jsm.consumers.info(nats.streamName, name);
    return;
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.status !== 404) throw err;
  }
  await nats.jsm.consumers.add(nats.streamName, {
    durable_name: name,
    filter_subject: eventsSubject(path),
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: fromOffset,
    ack_policy: AckPolicy.Explicit,
    // One delivery in flight across every replica: that is what keeps each subscription in order.
    max_ack_pending: 1,
    ack_wait: ackWaitMs * 1_000_000,
    max_deliver: -1,
  });
}

/**
 * A subscription/configured event put to work: checked, indexed, and given its delivery consumer, which starts at
 * `fromOffset` (the event after the configuring one; for a fork, the event after its stream/forked).
 */
async function configure(deps: PusherDeps, configuredEvent: EventEnvelope, fromOffset: number, log: Logger): Promise<EventInput[]> {
  const { nats, index, guard } = deps;
  const path = configuredEvent.streamPath as StreamPath;
  const configured = SubscriptionConfiguredSchema.safeParse(configuredEvent.payload);
  if (!configured.success) throw new TerminalError(`invalid ${configuredEvent.type}: ${configured.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const { slug, url, types, secret } = configured.data;
  const consumer = subscriptionConsumerName(path, slug);
  const entry: SubscriptionEntry = { path, slug, url, types: types ?? null, secret: secret ?? null, offset: configuredEvent.offset, active: true, consumer };
  // The URL and the secret are stored sealed; each is opened here to be checked, and again per delivery.
  const opened = openField(deps.secrets, entry, "url");
  const refusal = opened.refusal ?? (await guard.resolvedUrlRefusal(opened.value)) ?? openField(deps.secrets, entry, "secret").refusal;
  if (refusal !== null) {
    await index.record(slugKeyOf(path, slug), { ...entry, active: false });
    log.warn({ slug, refusal }, "subscription refused");
    return [{ type: SubscriptionEventTypes.disabled, payload: { slug, reason: `refused: ${refusal}` } }];
  }
  await ensureConsumer(nats, consumer, path, fromOffset, deps.timeoutMs + 15_000);
  await index.record(slugKeyOf(path, slug), entry);
  // The host only: a URL's path or user part may be a credential.
  log.info({ slug, host: new URL(opened.value).host }, "subscription configured");
  return [];
}

/**
 * A fork that asked for its source's subscriptions: each one active at the fork point delivers the fork's own
 * events, from its stream/forked on (the inherited ones were delivered from the source). Without the ask, none.
 */
async function inheritSubscriptions(deps: PusherDeps, state: SubscriptionsState, forked: EventEnvelope, log: Logger): Promise<EventInput[]> {
  const marker = StreamForkedSchema.safeParse(forked.payload);
  if (!marker.success || !marker.data.subscriptions) return [];
  const reactions: EventInput[] = [];
  for (const view of Object.values(state.subscriptions)) {
    if (view.ended !== null) continue;
    const configuredEvent = await getEvent(deps.nats, view.configuredAt.offset);
    if (configuredEvent === null) continue;
    reactions.push(...(await configure(deps, configuredEvent, forked.offset + 1, log)));
  }
  return reactions;
}

/**
 * Turns subscription/configured and subscription/removed into index entries
 * and durable consumers; SubscriptionWorkers deliver. Starts from the
 * beginning of the log so no subscription is missed, whenever it started.
 */
export function webhookPusherProcessor(deps: PusherDeps): Processor<SubscriptionsState> {
  const { nats, index } = deps;
  return {
    name: WEBHOOK_PUSHER_NAME,
    triggers: [SubscriptionEventTypes.configured, SubscriptionEventTypes.removed, SystemEventTypes.forked],
    startFrom: "all",
    initialState: initialSubscriptions,
    reduce: reduceSubscriptions,
    // An index: a subscription configured before a pause is taken up even if the pause came first.
    skipWhilePaused: false,
    react: async ({ event, stream, log }): Promise<EventInput[]> => {
      if (event.type === SystemEventTypes.forked) return inheritSubscriptions(deps, stream.state, event, log);
      const path = event.streamPath as StreamPath;
      if (event.type === SubscriptionEventTypes.removed) {
        const removed = SubscriptionRemovedSchema.safeParse(event.payload);
        if (!removed.success) throw new TerminalError(`invalid ${event.type}: ${removed.error.issues[0]?.message ?? ""}`);
        const key = slugKeyOf(path, removed.data.slug);
        const existing = index.get(key);
        if (existing !== undefined) await index.record(key, { ...existing, active: false, offset: event.offset });
        const consumer = subscriptionConsumerName(path, removed.data.slug);
        await nats.jsm.consumers.delete(nats.streamName, consumer).catch(() => false);
        log.info({ slug: removed.data.slug }, "subscription removed");
        return [];
      }
      return configure(deps, event, event.offset + 1, log);
    },
  };
}
