import { JetStreamApiError } from "@nats-io/jetstream";
import type { Logger } from "../service/logger.js";
import type { Nats } from "./connection.js";

/** What the events stream looks like from here: what `/readyz` says, without asking anything when it is asked. */
export type StreamStatus = "ready" | "disconnected" | "no-leader" | "missing";

/** JetStream's "stream not found". */
const STREAM_NOT_FOUND = 10059;
/** A check that has not answered for this long means no server could answer for the stream: no leader. */
const UNANSWERED_MS = 2_000;
/** A status older than this is not trusted (the checks stopped). */
const STALE_MS = 10_000;

/**
 * Keeps the events stream's status, checked in the background once a second, so that a readiness probe is answered
 * at once from memory (a probe that waited on JetStream took 2 s during a leader election, past the probe's timeout)
 * and tells a stream without a leader (an election, a lost quorum) from one that does not exist.
 */
export class StreamReadiness {
  private status: StreamStatus = "disconnected";
  private checkedAt = 0;
  private askedAt: number | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly nats: Nats,
    private readonly logger: Logger,
    private readonly intervalMs = 1_000,
  ) {}

  /** Checks now, then every interval. */
  async start(): Promise<void> {
    await this.check();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** The status as last seen; a check unanswered for long, or a stale status, counts against readiness. */
  current(): StreamStatus {
    if (!this.nats.isConnected()) return "disconnected";
    const now = Date.now();
    if (this.askedAt !== null && now - this.askedAt > UNANSWERED_MS) return "no-leader";
    if (now - this.checkedAt > STALE_MS) return "no-leader";
    return this.status;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.check().finally(() => {
        this.schedule();
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    const previous = this.status;
    if (!this.nats.isConnected()) {
      this.record("disconnected");
    } else {
      this.askedAt = Date.now();
      try {
        const info = await this.nats.jsm.streams.info(this.nats.streamName);
        // A replicated stream between leaders still answers info from a follower on some servers: no leader named.
        this.record(info.config.num_replicas > 1 && info.cluster?.leader === undefined ? "no-leader" : "ready");
      } catch (err) {
        this.record(err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND ? "missing" : "no-leader");
      } finally {
        this.askedAt = null;
      }
    }
    if (this.status !== previous) this.logger.info({ stream: this.nats.streamName, status: this.status, was: previous }, "events stream status changed");
  }

  private record(status: StreamStatus): void {
    this.status = status;
    this.checkedAt = Date.now();
  }
}
