import { Kvm, type KV } from "@nats-io/kv";
import { watchBucket } from "./kv-watch.js";
import type { Logger } from "./logger.js";
import type { Nats } from "./nats.js";

/**
 * A fact read from the log (per stream, or per stream and slug), cached in a KV bucket that every
 * service watches, so checking it is a map lookup. The log stays the truth:
 * each value carries the offset of the event it reflects, and a write only
 * replaces an older one (compare-and-set), so late writers never win.
 */
export class LogIndex<T extends { offset: number }> {
  private readonly values = new Map<string, T>();
  private stopWatching: (() => void) | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly logger: Logger,
    private readonly onChange: ((key: string, value: T | undefined) => void) | undefined,
  ) {}

  /** `onChange` hears every key at start and every change after, in order. */
  static async open<T extends { offset: number }>(nats: Nats, bucket: string, logger: Logger, replicas = 1, onChange?: (key: string, value: T | undefined) => void): Promise<LogIndex<T>> {
    const kv = await new Kvm(nats.js).create(bucket, { history: 1, replicas });
    const index = new LogIndex<T>(kv, logger, onChange);
    await index.watch();
    return index;
  }

  private async watch(): Promise<void> {
    this.stopWatching = await watchBucket(
      this.kv,
      (entry) => {
        if (entry.operation === "PUT") this.values.set(entry.key, entry.json<T>());
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

  /** Record a value seen in the log, unless a newer one is already recorded. */
  async record(key: string, value: T): Promise<void> {
    const text = JSON.stringify(value);
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.kv.get(key);
      try {
        if (current?.operation !== "PUT") {
          await this.kv.create(key, text);
        } else {
          if (current.json<T>().offset >= value.offset) return;
          await this.kv.update(key, text, current.revision);
        }
        // Apply locally at once, so this process's next check already sees it.
        this.values.set(key, value);
        return;
      } catch {
        // Another writer got there first: read again and compare offsets.
      }
    }
    throw new Error(`could not record ${key} after 10 attempts`);
  }

  close(): void {
    this.stopWatching?.();
  }
}
