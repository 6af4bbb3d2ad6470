import { Kvm, type KV } from "@nats-io/kv";
import type { Logger } from "./logger.js";
import type { Nats } from "./nats.js";
import { kvKeyOf, type StreamPath } from "./subjects.js";
import { KvBuckets } from "./wire.js";

/** What the index holds per stream: the last stream/paused or stream/resumed it has seen. */
export interface PauseStatus {
  paused: boolean;
  /** Offset of the event this status reflects; a status never replaces a newer one. */
  offset: number;
  reason?: string;
}

/**
 * Which streams are paused, for checks on every append. The truth is each
 * stream's own log (its last stream/paused or stream/resumed); this KV bucket is
 * a cache of it that every service watches, so a check is a map lookup. Writers
 * use compare-and-set on the offset, so a late, older status never wins.
 */
export class PauseIndex {
  private readonly statuses = new Map<string, PauseStatus>();
  private stopWatching: (() => void) | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly logger: Logger,
  ) {}

  static async open(nats: Nats, logger: Logger, replicas = 1): Promise<PauseIndex> {
    const kv = await new Kvm(nats.js).create(KvBuckets.streamStatus, { history: 1, replicas });
    const index = new PauseIndex(kv, logger);
    await index.watch();
    return index;
  }

  private async watch(): Promise<void> {
    const updates = await this.kv.watch();
    this.stopWatching = () => {
      updates.stop();
    };
    let ready: (() => void) | undefined;
    const initialised = new Promise<void>((resolve) => (ready = resolve));
    // The watcher first replays every key, then an entry with isUpdate marks live updates; an empty bucket sends none.
    const status = await this.kv.status();
    if (status.values === 0) ready?.();
    void (async () => {
      for await (const entry of updates) {
        if (entry.operation === "PUT") this.statuses.set(entry.key, entry.json<PauseStatus>());
        else this.statuses.delete(entry.key);
        if (entry.delta === 0 || entry.isUpdate) ready?.();
      }
    })().catch((err: unknown) => {
      this.logger.error({ err }, "pause index watch ended");
    });
    await initialised;
  }

  isPaused(path: StreamPath): boolean {
    return this.statuses.get(kvKeyOf(path))?.paused ?? false;
  }

  status(path: StreamPath): PauseStatus | undefined {
    return this.statuses.get(kvKeyOf(path));
  }

  /** Record a status seen in the log, unless a newer one is already recorded. */
  async record(path: StreamPath, status: PauseStatus): Promise<void> {
    const key = kvKeyOf(path);
    const value = JSON.stringify(status);
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.kv.get(key);
      try {
        if (current === null || current.operation !== "PUT") {
          await this.kv.create(key, value);
        } else {
          if (current.json<PauseStatus>().offset >= status.offset) return;
          await this.kv.update(key, value, current.revision);
        }
        // Apply locally at once, so this process's next check already sees it.
        this.statuses.set(key, status);
        return;
      } catch {
        // Another writer got there first: read again and compare offsets.
      }
    }
    throw new Error(`could not record pause status for ${path} after 10 attempts`);
  }

  close(): void {
    this.stopWatching?.();
  }
}
