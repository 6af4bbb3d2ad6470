import { Kvm, type KV } from "@nats-io/kv";
import type { Subscription } from "@nats-io/transport-node";
import { SubjectRoots } from "../contract/wire.js";
import { watchBucket } from "../nats/kv-watch.js";
import type { Logger } from "../service/logger.js";
import { isCompareAndSetConflict, type Nats } from "../nats/connection.js";

/**
 * A fact read from the log (per stream, or per stream and slug), cached in a KV bucket that every
 * service watches, so checking it is a map lookup. The log stays the truth:
 * each value carries the offset of the event it reflects, and a write only
 * replaces an older one (compare-and-set), so late writers never win.
 *
 * A recorded value is also announced over core NATS (`index-changes.<bucket>`) before the bucket is written: every
 * service applies it within a round trip even while the bucket has no leader (an election, a lost server), and the
 * bucket, written as soon as it can be, is what a service starting later reads.
 */
/** How long a write to the index waits for the bucket to take it. */
const RECORD_PATIENCE_MS = 15_000;
/** After that, how often it tries again in the background. */
const BACKGROUND_RETRY_MS = 5_000;

export class LogIndex<T extends { offset: number }> {
  private readonly values = new Map<string, T>();
  private stopWatching: (() => void) | undefined;
  private announcements: Subscription | undefined;
  private closed = false;

  private constructor(
    private readonly nats: Nats,
    private readonly kv: KV,
    private readonly bucket: string,
    private readonly logger: Logger,
    private readonly onChange: ((key: string, value: T | undefined) => void) | undefined,
  ) {}

  /** `onChange` hears every key at start and every change after, in order. */
  static async open<T extends { offset: number }>(nats: Nats, bucket: string, logger: Logger, replicas = 1, onChange?: (key: string, value: T | undefined) => void): Promise<LogIndex<T>> {
    const kv = await new Kvm(nats.js).create(bucket, { history: 1, replicas });
    const index = new LogIndex<T>(nats, kv, bucket, logger, onChange);
    index.listen();
    await index.watch();
    return index;
  }

  private get announcementSubject(): string {
    return `${SubjectRoots.indexChanges}.${this.bucket}`;
  }

  /** Applies what other services announce they record, as the watch would once the bucket has it. */
  private listen(): void {
    this.announcements = this.nats.nc.subscribe(this.announcementSubject, {
      callback: (err, msg) => {
        if (err !== null) return;
        try {
          const { key, value } = msg.json<{ key: string; value: T }>();
          if (typeof key !== "string" || typeof value.offset !== "number") return;
          this.apply(key, value);
        } catch (parseError) {
          this.logger.debug({ err: parseError }, "ignored an index announcement that is not JSON");
        }
      },
    });
  }

  /** A value seen (announced, watched or recorded here) replaces only an older one: offsets never go back. */
  private apply(key: string, value: T): void {
    const local = this.values.get(key);
    if (local !== undefined && local.offset >= value.offset) return;
    this.values.set(key, value);
    this.onChange?.(key, value);
  }

  private async watch(): Promise<void> {
    this.stopWatching = await watchBucket(
      this.nats,
      this.kv,
      (entry) => {
        if (entry.operation === "PUT") {
          // A value this process recorded is not replaced by an older one still on its way through the watch.
          const value = entry.json() as T;
          const local = this.values.get(entry.key);
          if (local === undefined || local.offset <= value.offset) this.values.set(entry.key, value);
        }
        else this.values.delete(entry.key);
        this.onChange?.(entry.key, this.values.get(entry.key));
      },
      this.logger,
      "log index",
    );
  }

  get(key: string): T | undefined {
    return this.values.get(key);
  }

  /**
   * Record a value seen in the log, unless a newer one is already recorded. Waits for the bucket up to
   * RECORD_PATIENCE_MS (an election); past that it keeps trying in the background and returns: the event it reflects
   * is stored, and its writer must not be told otherwise.
   */
  async record(key: string, value: T): Promise<void> {
    this.apply(key, value);
    try {
      this.nats.nc.publish(this.announcementSubject, JSON.stringify({ key, value }));
    } catch (err) {
      // Disconnected: the bucket write below waits for the connection, and the watch carries the value then.
      this.logger.debug({ err, key }, "could not announce an index change");
    }
    try {
      await this.write(key, value, RECORD_PATIENCE_MS);
    } catch (err) {
      this.logger.error({ err, key, offset: value.offset }, "could not record a log fact in its index yet; retrying in the background");
      this.retryInBackground(key, value);
    }
  }

  private retryInBackground(key: string, value: T): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.write(key, value, RECORD_PATIENCE_MS).then(
        () => {
          this.logger.info({ key, offset: value.offset }, "log fact recorded in its index after all");
        },
        () => {
          this.retryInBackground(key, value);
        },
      );
    }, BACKGROUND_RETRY_MS);
    timer.unref();
  }

  private async write(key: string, value: T, patienceMs: number): Promise<void> {
    const text = JSON.stringify(value);
    // A lost compare-and-set is retried at once; a bucket without a leader (a server lost, an election under
    // way: seconds on a cluster) is waited for, so that what the log says reaches every service's index.
    const deadline = performance.now() + patienceMs;
    for (let delayMs = 50; ; ) {
      try {
        const current = await this.kv.get(key);
        if (current?.operation !== "PUT") await this.kv.create(key, text);
        else if (current.json<T>().offset >= value.offset) return;
        else await this.kv.update(key, text, current.revision);
        return;
      } catch (err) {
        if (performance.now() > deadline) throw new Error(`could not record ${key} in ${patienceMs / 1000} s`, { cause: err });
        // Another writer got there first: read again and compare offsets, at once.
        if (!isCompareAndSetConflict(err)) {
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          delayMs = Math.min(delayMs * 2, 1_000);
        }
      }
    }
  }

  close(): void {
    this.closed = true;
    this.stopWatching?.();
    this.announcements?.unsubscribe();
  }
}
