import { appendEvents } from "../../shared/log/append.js";
import { LogIndex } from "../../shared/log/log-index.js";
import type { ProcessorDeps } from "../runtime/run-processor.js";
import type { Processor } from "../runtime/runtime.js";
import type { SubscriptionsState } from "../../shared/state/subscriptions.js";
import { eventsSubject, slugKeyOf, subjectMatches, type StreamPath } from "../../shared/contract/subjects.js";
import { SecretBox } from "../../shared/log/secrets.js";
import { AddressGuard } from "../../shared/outbound/address-guard.js";
import { loadWebhookPusherConfig } from "./config.js";
import { WebhookSender } from "./delivery.js";
import { SubscriptionEventTypes } from "../../shared/contract/wire.js";
import { WEBHOOK_PUSHER_NAME, webhookPusherProcessor } from "./processor.js";
import { SUBSCRIPTION_BUCKET, type SubscriptionEntry } from "./subscriptions.js";
import { SubscriptionWorker } from "./worker.js";
import { serviceWriter } from "../../shared/log/writer.js";

/** Wires the pusher: the subscription index, one worker per active subscription, and the processor that fills the index. */
export async function buildWebhookPusher(deps: ProcessorDeps, env: NodeJS.ProcessEnv, options: { filterSubject?: string } = {}): Promise<Processor<SubscriptionsState>> {
  const { config, nats, logger, indexes, onStop } = deps;
  const pusherConfig = loadWebhookPusherConfig(env);
  const guard = new AddressGuard(pusherConfig.WEBHOOK_ALLOWED_NETWORKS);
  const sender = new WebhookSender(guard, pusherConfig.WEBHOOK_TIMEOUT_MS);
  const secrets = pusherConfig.SECRETS_KEYS === undefined ? null : new SecretBox(pusherConfig.SECRETS_KEYS);
  const workers = new Map<string, SubscriptionWorker>();
  // A pusher given a subtree delivers that subtree's subscriptions only, as it indexes only those.
  const filter = options.filterSubject;
  const handles = (path: StreamPath): boolean => filter === undefined || subjectMatches(filter, eventsSubject(path));
  const onDisabled = async (entry: SubscriptionEntry, atOffset: number): Promise<void> => {
    const result = await appendEvents(
      nats,
      entry.path,
      [
        {
          type: SubscriptionEventTypes.disabled,
          payload: { slug: entry.slug, reason: "the receiver answered 410 Gone", offset: atOffset },
          source: { processor: WEBHOOK_PUSHER_NAME, causationOffset: atOffset },
          idempotencyKey: `${WEBHOOK_PUSHER_NAME}:disabled:${entry.slug}:${entry.offset}`,
        },
      ],
      { writer: serviceWriter(WEBHOOK_PUSHER_NAME), indexes },
    );
    await index.record(slugKeyOf(entry.path, entry.slug), { ...entry, active: false, offset: result.events[0]?.offset ?? entry.offset });
    await nats.jsm.consumers.delete(nats.streamName, entry.consumer).catch(() => false);
  };

  const workerDeps = { nats, indexes, sender, secrets, retryScheduleMs: pusherConfig.WEBHOOK_RETRY_SCHEDULE_MS, logger, processor: WEBHOOK_PUSHER_NAME, onDisabled };
  const index = await LogIndex.open<SubscriptionEntry>(nats, SUBSCRIPTION_BUCKET, logger, config.EVENTS_REPLICAS, (key, entry) => {
    const worker = workers.get(key);
    if (entry?.active === true && handles(entry.path)) {
      if (worker !== undefined) worker.update(entry);
      else {
        const started = new SubscriptionWorker(entry, workerDeps);
        workers.set(key, started);
        started.start();
      }
    } else if (worker !== undefined) {
      worker.stop();
      workers.delete(key);
    }
  });
  logger.info({ subscriptions: workers.size }, "subscriptions loaded");
  onStop(async () => {
    for (const worker of workers.values()) worker.stop();
    index.close();
    await sender.close();
  });
  const processor = webhookPusherProcessor({ nats, index, guard, secrets, timeoutMs: pusherConfig.WEBHOOK_TIMEOUT_MS });
  return options.filterSubject === undefined ? processor : { ...processor, filterSubject: options.filterSubject };
}
