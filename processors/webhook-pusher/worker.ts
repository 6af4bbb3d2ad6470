import type { ConsumerMessages } from "@nats-io/jetstream";
import { appendEvents } from "../../shared/log/append.js";
import { AgentmeshError } from "../../shared/contract/errors.js";
import type { Logger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import { typeMatcher } from "../../shared/contract/type-glob.js";
import { webhookDeliveries } from "../../shared/service/metrics.js";
import { decodeJsMsg } from "../../shared/log/read.js";
import { openSecret, type SecretBox } from "../../shared/log/secrets.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import type { DeliveryOutcome, WebhookSender } from "./delivery.js";
import { DEFAULT_EXCLUDED_TYPES } from "../../shared/contract/events/subscriptions.js";
import { SubscriptionEventTypes } from "../../shared/contract/wire.js";
import type { SubscriptionEntry } from "./subscriptions.js";
import { serviceWriter } from "../../shared/log/writer.js";

export interface WorkerDeps {
  nats: Nats;
  indexes: StreamIndexes;
  sender: WebhookSender;
  /** Opens the secrets the gateway sealed. */
  secrets: SecretBox | null;
  /** Delay before attempt n+1 after attempt n failed; its length is the number of attempts. */
  retryScheduleMs: readonly number[];
  logger: Logger;
  processor: string;
  /** Called when the receiver answered 410: the subscription is disabled. */
  onDisabled: (entry: SubscriptionEntry, disabledAt: number) => Promise<void>;
}

/**
 * Delivers one subscription's events, in offset order, from its durable
 * consumer. Every replica runs a worker per subscription; the consumer lets one
 * message out at a time, so whichever replica holds it, order holds.
 */
export class SubscriptionWorker {
  private messages: ConsumerMessages | undefined;
  private stopped = false;
  private matches: (type: string) => boolean;

  constructor(
    private entry: SubscriptionEntry,
    private readonly deps: WorkerDeps,
  ) {
    this.matches = SubscriptionWorker.matcher(entry);
  }

  private static matcher(entry: SubscriptionEntry): (type: string) => boolean {
    if (entry.types !== null) return typeMatcher(entry.types);
    const excluded = typeMatcher(DEFAULT_EXCLUDED_TYPES);
    return (type) => !excluded(type);
  }

  /** A re-configured subscription keeps its place in the stream; only where and how it delivers change. */
  update(entry: SubscriptionEntry): void {
    this.entry = entry;
    this.matches = SubscriptionWorker.matcher(entry);
  }

  start(): void {
    void this.run().catch((err: unknown) => {
      this.deps.logger.error({ err, slug: this.entry.slug, stream: this.entry.path }, "webhook worker stopped");
    });
  }

  stop(): void {
    this.stopped = true;
    this.messages?.stop();
  }

  /** A method, not a field read: stop() flips it while the loop awaits. */
  private isStopped(): boolean {
    return this.stopped;
  }

  private async run(): Promise<void> {
    const { nats } = this.deps;
    while (!this.stopped) {
      try {
        const consumer = await nats.js.consumers.get(nats.streamName, this.entry.consumer);
        this.messages = await consumer.consume({ max_messages: 1 });
        for await (const m of this.messages) {
          const decoded = decodeJsMsg(m);
          const event = decoded.envelope;
          if (!this.matches(event.type)) {
            m.ack();
            continue;
          }
          const { entry } = this;
          const log = this.deps.logger.child({ processor: this.deps.processor, stream: entry.path, offset: event.offset, type: event.type, slug: entry.slug });
          const outcome = await this.deliver(entry, decoded.json, event.offset);
          webhookDeliveries.inc({ outcome: outcome.kind });
          if (outcome.kind === "delivered") {
            log.info({ status: outcome.status, attempt: m.info.deliveryCount }, "webhook delivered");
            m.ack();
          } else if (outcome.kind === "gone") {
            log.warn("receiver answered 410 Gone; disabling the subscription");
            await this.deps.onDisabled(entry, event.offset);
            m.term();
            return;
          } else {
            const attempt = m.info.deliveryCount;
            const next = this.deps.retryScheduleMs[attempt];
            if (next !== undefined) {
              const delay = Math.max(next, outcome.retryAfterMs ?? 0);
              log.warn({ error: outcome.error, attempt, retryInMs: delay }, "webhook delivery failed; will retry");
              m.nak(delay);
            } else {
              log.error({ error: outcome.error, attempts: attempt }, "webhook delivery failed for good");
              const recorded = await this.recordFailure(entry, event.offset, attempt, outcome.error, outcome.status);
              if (recorded) m.term();
              else m.nak(5_000);
            }
          }
        }
      } catch (err) {
        if (this.isStopped()) return;
        this.deps.logger.warn({ err, slug: this.entry.slug }, "webhook worker lost its consumer; retrying");
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  }

  /** Signed when the subscription has a secret, opened per delivery: it is never kept in clear beside the entry. */
  private async deliver(entry: SubscriptionEntry, body: string, offset: number): Promise<DeliveryOutcome> {
    let secret: string | undefined;
    let url: string;
    try {
      url = openSecret(this.deps.secrets, entry.url, entry.path, SubscriptionEventTypes.configured, "url");
      secret = entry.secret === null ? undefined : openSecret(this.deps.secrets, entry.secret, entry.path, SubscriptionEventTypes.configured, "secret");
    } catch (err) {
      // Never sent unsigned: it fails, and retries until the key is configured or the attempts run out.
      return { kind: "failed", error: err instanceof Error ? err.message : "the secret does not open" };
    }
    return this.deps.sender.send({ url, body, id: `${entry.slug}_${offset}`, ...(secret === undefined ? {} : { secret }) });
  }

  private async recordFailure(entry: SubscriptionEntry, offset: number, attempts: number, error: string, status: number | undefined): Promise<boolean> {
    try {
      await appendEvents(
        this.deps.nats,
        entry.path,
        [
          {
            type: SubscriptionEventTypes.deliveryFailed,
            payload: { slug: entry.slug, offset, attempts, error, ...(status === undefined ? {} : { status }) },
            source: { processor: this.deps.processor, causationOffset: offset },
            idempotencyKey: `${this.deps.processor}:failed:${entry.slug}:${offset}`,
          },
        ],
        { writer: serviceWriter(this.deps.processor), indexes: this.deps.indexes },
      );
      return true;
    } catch (err) {
      if (!(err instanceof AgentmeshError)) throw err;
      return false;
    }
  }
}
