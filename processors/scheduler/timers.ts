import TinyQueue from "tinyqueue";
import { appendEvents } from "../../shared/log/append.js";
import { AgentmeshError } from "../../shared/contract/errors.js";
import type { Logger } from "../../shared/service/logger.js";
import { scheduleDelay } from "../../shared/service/metrics.js";
import type { Nats } from "../../shared/nats/connection.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import { nextDue } from "./schedule.js";
import type { IndexedSchedule, ScheduleIndex } from "./schedule-index.js";
import { serviceWriter } from "../../shared/log/writer.js";

/** setTimeout cannot wait longer than ~24.8 days; far schedules are re-armed. */
const MAX_TIMER_MS = 60 * 60 * 1000;
const RETRY_MS = 1000;
/** How often a one-shot that came due while its stream was paused tries again. */
const PAUSED_RETRY_MS = 2_000;

interface HeapItem {
  dueMs: number;
  key: string;
  version: number;
}

/**
 * Fires due schedules. Every replica holds every schedule and fires it at the
 * same due time; the appended event's idempotency key (slug + due time) lets
 * JetStream store it once, and the index's compare-and-set moves the schedule
 * on once. One timer for the earliest due time, a heap for the rest, so 10,000
 * pending schedules cost no more per firing than ten.
 */
export class ScheduleTimers {
  private readonly heap = new TinyQueue<HeapItem>([], (a, b) => a.dueMs - b.dueMs);
  private readonly versions = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Number.POSITIVE_INFINITY;
  private stopped = false;

  constructor(
    private readonly deps: { nats: Nats; index: ScheduleIndex; indexes: StreamIndexes; logger: Logger; processor: string },
  ) {}

  get pending(): number {
    return this.versions.size;
  }

  /** Called for every index entry and every change of one. */
  track(key: string, indexed: IndexedSchedule): void {
    const version = (this.versions.get(key) ?? 0) + 1;
    const { entry } = indexed;
    if (entry.definition === null || entry.nextDueMs === null) {
      this.versions.delete(key);
      return;
    }
    this.versions.set(key, version);
    this.heap.push({ dueMs: entry.nextDueMs, key, version });
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private arm(): void {
    const head = this.heap.peek();
    if (this.stopped || head === undefined || head.dueMs >= this.armedFor) return;
    clearTimeout(this.timer);
    this.armedFor = head.dueMs;
    this.timer = setTimeout(() => {
      this.armedFor = Number.POSITIVE_INFINITY;
      void this.fireDue();
    }, Math.min(MAX_TIMER_MS, Math.max(0, head.dueMs - Date.now())));
  }

  private async fireDue(): Promise<void> {
    const now = Date.now();
    const due: HeapItem[] = [];
    while ((this.heap.peek()?.dueMs ?? Number.POSITIVE_INFINITY) <= now) due.push(this.heap.pop() as HeapItem);
    await Promise.all(due.filter((item) => this.versions.get(item.key) === item.version).map((item) => this.fire(item)));
    this.arm();
  }

  private async fire(item: HeapItem): Promise<void> {
    const { index, nats, indexes, logger, processor } = this.deps;
    const current = await index.get(item.key).catch(() => null);
    const entry = current?.entry;
    const definition = entry?.definition;
    if (current === null || entry === undefined || definition === undefined || definition === null || entry.nextDueMs === null) return;
    if (entry.nextDueMs > Date.now()) return; // moved on by another replica; the watch re-tracks it
    const dueMs = entry.nextDueMs;
    const log = logger.child({ processor, stream: entry.path, slug: entry.slug, scheduledFor: new Date(dueMs).toISOString() });
    try {
      await appendEvents(
        nats,
        entry.path,
        [
          {
            type: definition.append.type,
            payload: definition.append.payload,
            metadata: { scheduleSlug: entry.slug, scheduledFor: new Date(dueMs).toISOString() },
            source: { processor, causationOffset: entry.offset },
            idempotencyKey: `${processor}:${entry.slug}:${dueMs}`,
          },
        ],
        { writer: serviceWriter(processor), indexes },
      );
      scheduleDelay.observe((Date.now() - dueMs) / 1000);
      log.info({ delayMs: Date.now() - dueMs }, "schedule fired");
    } catch (err) {
      if (err instanceof AgentmeshError && err.code === "STREAM_PAUSED") {
        // A one-shot (a tool call's timeout) is still owed once the stream is resumed; a recurring run is skipped.
        if (definition.schedule.kind === "at" || definition.schedule.kind === "in") {
          log.info("stream paused; firing once it is resumed");
          this.heap.push({ dueMs: Date.now() + PAUSED_RETRY_MS, key: item.key, version: item.version });
          return;
        }
        log.info("stream paused; skipping this run");
      } else {
        log.warn({ err }, "could not fire schedule; retrying");
        this.heap.push({ dueMs: Date.now() + RETRY_MS, key: item.key, version: item.version });
        return;
      }
    }
    await index.advance(item.key, current, nextDue(definition.schedule, dueMs, Date.now()));
  }
}
