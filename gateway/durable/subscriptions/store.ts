import { createHash } from "node:crypto";
import { Kvm, type KV } from "@nats-io/kv";
import { AgentmeshError } from "../../../shared/contract/errors.js";
import { KvBuckets } from "../../../shared/contract/wire.js";
import { isCompareAndSetConflict, natsFailure, type Nats } from "../../../shared/nats/connection.js";
import { watchBucket } from "../../../shared/nats/kv-watch.js";
import type { Logger } from "../../../shared/service/logger.js";
import { SubscriptionRecordSchema, type SubscriptionRecord } from "./record.js";

const CAS_ATTEMPTS = 20;

/** Ids are the client's; the key is their hash, so any id fits KV's key alphabet. */
function keyOf(id: string): string {
  return `s.${createHash("sha256").update(id).digest("hex")}`;
}

export interface Found {
  record: SubscriptionRecord;
  revision: number;
}

/**
 * The subscriptions' records in KV: every change is a compare-and-set on the
 * one key of its subscription (as DurableStreamStore.update), and each
 * replica keeps a cache of all of them from a watch, for matching stream
 * changes and arming lease and retry timers.
 */
export class SubscriptionStore {
  private kvPromise: Promise<KV> | undefined;
  private readonly cache = new Map<string, SubscriptionRecord>();
  private stopWatch: (() => void) | undefined;

  constructor(
    private readonly nats: Nats,
    private readonly logger: Logger,
    private readonly replicas: number,
  ) {}

  async kv(): Promise<KV> {
    this.kvPromise ??= new Kvm(this.nats.js).create(KvBuckets.durableSubscriptions, { history: 1, replicas: this.replicas });
    try {
      return await this.kvPromise;
    } catch (err) {
      this.kvPromise = undefined;
      throw natsFailure(err);
    }
  }

  /** Start the cache; `onChange` hears each record (null: removed) after the cache has it. */
  async watch(onChange: (id: string, record: SubscriptionRecord | null) => void): Promise<void> {
    const byKey = new Map<string, string>();
    this.stopWatch = await watchBucket(
      this.nats,
      await this.kv(),
      (change) => {
        if (change.operation !== "PUT") {
          const id = byKey.get(change.key);
          if (id === undefined) return;
          byKey.delete(change.key);
          this.cache.delete(id);
          onChange(id, null);
          return;
        }
        const parsed = SubscriptionRecordSchema.safeParse(change.json());
        if (!parsed.success) {
          this.logger.warn({ key: change.key }, "unreadable subscription record ignored");
          return;
        }
        byKey.set(change.key, parsed.data.id);
        this.remember(parsed.data);
        onChange(parsed.data.id, parsed.data);
      },
      this.logger,
      "durable subscriptions",
    );
  }

  stop(): void {
    this.stopWatch?.();
  }

  /** Every subscription this replica knows of. */
  cached(): IterableIterator<SubscriptionRecord> {
    return this.cache.values();
  }

  /** A record this replica wrote is known at once, before its watch hears it (a stream created next must match it). */
  remember(record: SubscriptionRecord): void {
    this.cache.set(record.id, record);
  }

  async get(id: string): Promise<Found | null> {
    const kv = await this.kv();
    const entry = await kv.get(keyOf(id)).catch((err: unknown) => {
      throw natsFailure(err);
    });
    if (entry === null || entry.operation !== "PUT") return null;
    const parsed = SubscriptionRecordSchema.safeParse(entry.json());
    if (!parsed.success) throw new AgentmeshError("INTERNAL", `The record of subscription ${id} is not readable`, { cause: parsed.error });
    return { record: parsed.data, revision: entry.revision };
  }

  /** Store a new subscription; false if one exists. */
  async create(record: SubscriptionRecord): Promise<boolean> {
    const kv = await this.kv();
    try {
      await kv.create(keyOf(record.id), JSON.stringify(record));
    } catch (err) {
      if (isCompareAndSetConflict(err)) return false;
      throw natsFailure(err);
    }
    this.remember(record);
    return true;
  }

  async delete(id: string): Promise<void> {
    const kv = await this.kv();
    await kv.delete(keyOf(id)).catch((err: unknown) => {
      throw natsFailure(err);
    });
    this.cache.delete(id);
  }

  /**
   * Apply a change by compare-and-set, reading again after a conflict. `change` may be async (it reads tails) and
   * may throw to refuse; it returns the next record (the same object: no write) and a result. Null when the
   * subscription does not exist. `written` tells whether this call's write is the one that landed.
   */
  async transact<T>(id: string, change: (record: SubscriptionRecord) => Promise<{ next: SubscriptionRecord; result: T }>): Promise<{ record: SubscriptionRecord; result: T; written: boolean } | null> {
    const kv = await this.kv();
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const found = await this.get(id);
      if (found === null) return null;
      const { next, result } = await change(found.record);
      if (next === found.record) return { record: next, result, written: false };
      try {
        await kv.update(keyOf(id), JSON.stringify(next), found.revision);
        this.remember(next);
        return { record: next, result, written: true };
      } catch (err) {
        if (!isCompareAndSetConflict(err)) throw natsFailure(err);
      }
    }
    throw new AgentmeshError("INTERNAL", `Subscription ${id} kept changing under ${CAS_ATTEMPTS} attempts to update it`);
  }
}
