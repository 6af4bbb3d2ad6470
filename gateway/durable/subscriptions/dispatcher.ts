import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import { AgentmeshError, ensureError } from "../../../shared/contract/errors.js";
import { pathOfKvKey, parseStreamPath, type StreamPath } from "../../../shared/contract/subjects.js";
import { ConsumerNames, KvBuckets } from "../../../shared/contract/wire.js";
import { serviceWriter } from "../../../shared/log/writer.js";
import { formatOffset, ZERO_OFFSET } from "../offsets.js";
import type { AppendBatcher } from "../append-batch.js";
import type { DurableDeps } from "../protocol-context.js";
import { jsonValuesText } from "../stream-content.js";
import { DurableStreamRecordSchema } from "../stream-record.js";
import { addLink, autoAck, BEFORE_START, createWake, delivered, deliveryFailed, expire, hasPendingWork, matchesPattern, streamInfos, takeRetry, unlink, type Tails } from "./engine.js";
import type { SubscriptionRecord } from "./record.js";
import type { SubscriptionKeys } from "./signing.js";
import type { SubscriptionStore } from "./store.js";
import type { WakeSender } from "./webhook-delivery.js";

/**
 * Runs subscriptions: hears every change of a durable stream's record once
 * across all gateway replicas (a durable pull consumer on the records'
 * bucket stream, shared by the replicas), links and wakes the subscriptions it
 * concerns, and arms each record's lease and retry timers on every replica.
 * Whatever it does is a compare-and-set on the subscription's record, and
 * only the replica whose write lands acts on it (delivers, appends a wake),
 * so a change wakes a subscription once, and a replica that dies mid-lease
 * leaves its wake to the others' timers.
 */

const RECORDS_STREAM = `KV_${KvBuckets.durableStreams}`;
const RECORDS_PREFIX = `$KV.${KvBuckets.durableStreams}.`;
/** A stream change left unacked (its replica died) is handed to another replica after this. */
const ACK_WAIT_MS = 10_000;
const RESTART_DELAY_MS = 500;
/** Well past a KV watch's delay in hearing a new subscription on every replica (milliseconds). */
const CATCH_UP_AFTER_MS = 1_000;

/** The protocol names streams without the leading slash our paths carry. */
export function protocolPath(path: StreamPath): string {
  return path.slice(1);
}

export function streamPathOf(protocol: string): StreamPath {
  return parseStreamPath(`/${protocol}`);
}

export interface DispatcherDeps {
  durable: DurableDeps;
  store: SubscriptionStore;
  keys: SubscriptionKeys | null;
  sender: WakeSender;
  appends: AppendBatcher;
}

export class SubscriptionDispatcher {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private messages: ConsumerMessages | undefined;
  private stopped = false;

  constructor(private readonly deps: DispatcherDeps) {}

  private get logger(): DurableDeps["logger"] {
    return this.deps.durable.logger;
  }

  async start(): Promise<void> {
    await this.deps.store.watch((id, record) => {
      this.arm(id, record);
    });
    // The records' bucket exists before anyone creates a stream through the protocol.
    await this.deps.durable.store.ready();
    await this.ensureConsumer();
    void this.consume();
  }

  /** Idempotent: the first replica creates the shared consumer, the others (and a restarted feed) find it. */
  private async ensureConsumer(): Promise<void> {
    const jsm = await this.deps.durable.nats.js.jetstreamManager();
    await jsm.consumers.add(RECORDS_STREAM, {
      durable_name: ConsumerNames.durableSubscriptions,
      filter_subject: `${RECORDS_PREFIX}>`,
      deliver_policy: DeliverPolicy.New,
      ack_policy: AckPolicy.Explicit,
      ack_wait: ACK_WAIT_MS * 1_000_000,
      max_ack_pending: 1000,
    });
  }

  stop(): void {
    this.stopped = true;
    this.messages?.stop();
    this.deps.store.stop();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private running(): boolean {
    return !this.stopped;
  }

  /** Pull the shared consumer for as long as the gateway runs, starting again after any interruption. */
  private async consume(): Promise<void> {
    for (let restarted = false; this.running(); restarted = true) {
      try {
        // Whatever stopped the feed may have been the consumer's loss (an operator deleted it): it is made again.
        if (restarted) await this.ensureConsumer();
        const consumer = await this.deps.durable.nats.js.consumers.get(RECORDS_STREAM, ConsumerNames.durableSubscriptions);
        this.messages = await consumer.consume({ max_messages: 256, expires: 2_000, idle_heartbeat: 1_000 });
        if (!this.running()) this.messages.stop();
        for await (const m of this.messages) {
          await this.onStreamChange(m);
        }
      } catch (err) {
        if (this.running()) this.logger.warn({ err }, "subscriptions' change feed interrupted; starting it again");
      }
      if (this.running()) await new Promise((resolve) => setTimeout(resolve, RESTART_DELAY_MS));
    }
  }

  /** One durable stream's record changed: acked only once every subscription it concerns is settled. */
  private async onStreamChange(m: JsMsg): Promise<void> {
    const streamPath = pathOfKvKey(m.subject.slice(RECORDS_PREFIX.length));
    if (streamPath === null) {
      m.ack();
      return;
    }
    const path = protocolPath(streamPath);
    const operation = m.headers?.get("KV-Operation");
    let removed = operation === "DEL" || operation === "PURGE";
    if (!removed) {
      const parsed = DurableStreamRecordSchema.safeParse(m.json());
      removed = !parsed.success || parsed.data.deleted;
    }
    try {
      for (const subscription of [...this.deps.store.cached()]) {
        const linked = subscription.links[path] !== undefined;
        if (!linked && !matchesPattern(subscription, path)) continue;
        if (removed) await this.deps.store.transact(subscription.id, (r) => Promise.resolve({ next: unlink(r, path), result: null }));
        else await this.wake(subscription.id, (r) => (matchesPattern(r, path) ? addLink(r, path, "glob", BEFORE_START) : r));
      }
      m.ack();
    } catch (err) {
      this.logger.warn({ err, path }, "subscriptions not updated for a stream change; it will be handed out again");
      m.nak(1_000);
    }
  }

  /**
   * Close the gap between a new subscription's snapshot of the streams and the moment every replica's cache knows
   * it: a stream created meanwhile, whose change another replica handled without matching it, is linked now (from
   * before its first message) and wakes the subscription. Run by the replica that created it, once the watches
   * have had time to hear of it; a stream the feed linked already is left as it is.
   */
  scheduleCatchUp(id: string): void {
    const timer = setTimeout(() => {
      void this.linkNewMatches(id).catch((err: unknown) => {
        this.logger.warn({ err: ensureError(err), subscription: id }, "new subscription's streams not caught up");
      });
    }, CATCH_UP_AFTER_MS);
    timer.unref();
  }

  private async linkNewMatches(id: string): Promise<void> {
    if (!this.running()) return;
    const paths = (await this.deps.durable.store.paths()).map(protocolPath);
    await this.wake(id, (r) => paths.reduce((next, path) => (next.links[path] === undefined && matchesPattern(next, path) ? addLink(next, path, "glob", BEFORE_START) : next), r));
  }

  /** The tails of the subscription's streams, read from their records now (read-your-writes for a claim after an append). */
  async tails(record: SubscriptionRecord): Promise<Tails> {
    const entries = await Promise.all(
      Object.keys(record.links).map(async (path): Promise<[string, string]> => {
        const found = await this.deps.durable.store.lookup(streamPathOf(path));
        if (found.kind === "durable") return [path, formatOffset(found.record.tailSeq)];
        if (found.kind === "agent") return [path, formatOffset(found.tailSeq)];
        return [path, ZERO_OFFSET];
      }),
    );
    return Object.fromEntries(entries);
  }

  /**
   * Open a wake if work is pending and none is open (after `before`, a change to make in the same write). The
   * replica whose write opens it delivers it. True if a wake was opened.
   */
  async wake(id: string, before: (record: SubscriptionRecord) => SubscriptionRecord = (r) => r): Promise<boolean> {
    const outcome = await this.deps.store.transact(id, async (current) => {
      const changed = before(current);
      const next = createWake(changed, await this.tails(changed), Date.now());
      return { next, result: next.wake.generation !== current.wake.generation };
    });
    if (outcome?.written !== true || !outcome.result) return false;
    await this.deliverWake(outcome.record);
    return true;
  }

  /** Announce an open wake: a signed webhook, or a wake event on the pull-wake pool's stream. */
  private async deliverWake(record: SubscriptionRecord): Promise<void> {
    if (record.config.type === "webhook") {
      void this.sendWebhook(record).catch((err: unknown) => {
        this.logger.error({ err: ensureError(err), subscription: record.id }, "webhook wake not settled");
      });
      return;
    }
    await this.appendWakeEvent(record);
  }

  private async appendWakeEvent(record: SubscriptionRecord): Promise<void> {
    const wakeStream = record.config.wakeStream;
    if (wakeStream === null) return;
    const snapshot = record.wake.snapshot ?? {};
    const stream = Object.keys(snapshot).find((path) => (snapshot[path] ?? ZERO_OFFSET) > (record.links[path]?.acked ?? ZERO_OFFSET)) ?? null;
    const event = { type: "wake", subscription_id: record.id, stream, generation: record.wake.generation, ts: Date.now() };
    try {
      await this.deps.appends.append(this.deps.durable, streamPathOf(wakeStream), { writer: serviceWriter("durable-subscriptions"), contentType: "application/json", data: Buffer.from(jsonValuesText([event])), values: [event] });
    } catch (err) {
      // A pool whose stream is missing is the operator's to fix; the wake stays open for a claim.
      if (err instanceof AgentmeshError && (err.code === "STREAM_NOT_FOUND" || err.code === "STREAM_GONE" || err.code === "INVALID_STREAM_PATH")) {
        this.logger.warn({ subscription: record.id, wakeStream, code: err.code }, "wake stream missing; wake not announced");
        return;
      }
      throw err;
    }
  }

  private async sendWebhook(record: SubscriptionRecord): Promise<void> {
    const { keys } = this.deps;
    const url = record.config.webhookUrl;
    const { wakeId, generation, snapshot } = record.wake;
    if (keys === null || url === null || wakeId === null) return;
    const body = JSON.stringify({
      subscription_id: record.id,
      wake_id: wakeId,
      generation,
      streams: streamInfos(record, snapshot ?? {}),
      callback_url: `${record.baseUrl}/v1/stream/__ds/subscriptions/${encodeURIComponent(record.id)}/callback`,
      callback_token: keys.mintToken(record.id, generation),
    });
    const outcome = await this.deps.sender.send(url, body, keys.signWebhook(body));
    if (outcome.kind === "failed") {
      this.logger.info({ subscription: record.id, generation, error: outcome.error }, "webhook wake not delivered; retrying later");
      await this.deps.store.transact(record.id, (r) => Promise.resolve({ next: deliveryFailed(r, generation, wakeId, Date.now()), result: null }));
      return;
    }
    if (!outcome.done) {
      await this.deps.store.transact(record.id, (r) => Promise.resolve({ next: delivered(r, generation, wakeId), result: null }));
      return;
    }
    const acked = await this.deps.store.transact(record.id, (r) => Promise.resolve({ next: autoAck(r, generation, wakeId), result: null }));
    if (acked?.written === true) await this.wake(record.id);
  }

  /** Each replica times every record's lease and retry; the timer's write decides which replica acts. */
  private arm(id: string, record: SubscriptionRecord | null): void {
    const previous = this.timers.get(id);
    if (previous !== undefined) clearTimeout(previous);
    this.timers.delete(id);
    if (record === null || this.stopped) return;
    const due = [record.wake.leaseUntil, record.wake.nextAttemptAt].filter((t): t is number => t !== null);
    if (due.length === 0) return;
    // A few ms late, so that the replica that holds the lease renews or settles first when it can.
    const delayMs = Math.max(0, Math.min(...due) - Date.now()) + 20 + Math.floor(Math.random() * 30);
    const timer = setTimeout(() => {
      this.timers.delete(id);
      void this.onDue(id).catch((err: unknown) => {
        this.logger.warn({ err: ensureError(err), subscription: id }, "subscription timer failed");
      });
    }, delayMs);
    timer.unref();
    this.timers.set(id, timer);
  }

  private async onDue(id: string): Promise<void> {
    const now = Date.now();
    const retried = await this.deps.store.transact(id, (r) => Promise.resolve({ next: takeRetry(r, now), result: null }));
    if (retried?.written === true) {
      await this.sendWebhook(retried.record);
      return;
    }
    const expired = await this.deps.store.transact(id, async (r) => {
      const next = expire(r, now);
      if (next === r) return { next, result: false };
      return { next, result: hasPendingWork(next, await this.tails(next)) };
    });
    if (expired?.written === true) {
      this.logger.debug({ subscription: id }, "lease expired");
      await this.wake(id);
    } else if (expired !== null) this.arm(id, expired.record);
  }
}
