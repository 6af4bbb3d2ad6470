import { Kvm, type KV } from "@nats-io/kv";
import { watchBucket } from "../../shared/nats/kv-watch.js";
import type { Logger } from "../../shared/service/logger.js";
import type { Nats } from "../../shared/nats/connection.js";
import { slugKeyOf, type StreamPath } from "../../shared/contract/subjects.js";
import type { Schedule } from "../../shared/contract/events/schedules.js";

export const SCHEDULE_BUCKET = "agentmesh-schedules";

/** One schedule as the index knows it: a cache of the stream's schedule events plus when it is next due. */
export interface ScheduleEntry {
  path: StreamPath;
  slug: string;
  /** What to append and when; null once cancelled. */
  definition: { append: { type: string; payload: unknown }; schedule: Schedule } | null;
  /** Offset of the schedule/added or schedule/cancelled event this entry reflects; older events never overwrite it. */
  offset: number;
  /** Epoch ms of the next run; null once done or cancelled. */
  nextDueMs: number | null;
}

export interface IndexedSchedule {
  entry: ScheduleEntry;
  revision: number;
}

export function scheduleKey(path: StreamPath, slug: string): string {
  return slugKeyOf(path, slug);
}

/**
 * Every schedule of every stream, in a KV bucket every scheduler replica
 * watches. The streams' schedule/added and schedule/cancelled events are the
 * truth; this is their index with the next due time, advanced by
 * compare-and-set so replicas never move it twice.
 */
export class ScheduleIndex {
  private constructor(
    private readonly nats: Nats,
    private readonly kv: KV,
    private readonly logger: Logger,
  ) {}

  static async open(nats: Nats, logger: Logger, replicas = 1): Promise<ScheduleIndex> {
    const kv = await new Kvm(nats.js).create(SCHEDULE_BUCKET, { history: 1, replicas });
    return new ScheduleIndex(nats, kv, logger);
  }

  /** Calls `onEntry` for every schedule now and on every change; resolves once the current ones are delivered. */
  watch(onEntry: (key: string, indexed: IndexedSchedule) => void): Promise<() => void> {
    return watchBucket(
      this.nats,
      this.kv,
      (update) => {
        if (update.operation === "PUT") onEntry(update.key, { entry: update.json() as ScheduleEntry, revision: update.revision });
      },
      this.logger,
      "schedule index",
    );
  }

  async get(key: string): Promise<IndexedSchedule | null> {
    const current = await this.kv.get(key);
    if (current?.operation !== "PUT") return null;
    return { entry: current.json<ScheduleEntry>(), revision: current.revision };
  }

  /** Record what a schedule event says, unless the index already reflects a later event. */
  async applyFromLog(entry: ScheduleEntry): Promise<void> {
    const key = scheduleKey(entry.path, entry.slug);
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.get(key);
      if (current !== null && current.entry.offset >= entry.offset) return;
      try {
        if (current === null) await this.kv.create(key, JSON.stringify(entry));
        else await this.kv.update(key, JSON.stringify(entry), current.revision);
        return;
      } catch {
        // Lost a race with another replica: read again.
      }
    }
    throw new Error(`could not index schedule ${key}`);
  }

  /** Move a schedule to its next due time if nobody else has since `revision`; false when someone has. */
  async advance(key: string, indexed: IndexedSchedule, nextDueMs: number | null): Promise<boolean> {
    try {
      await this.kv.update(key, JSON.stringify({ ...indexed.entry, nextDueMs }), indexed.revision);
      return true;
    } catch {
      return false;
    }
  }
}
