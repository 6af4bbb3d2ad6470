import type { Logger } from "../../shared/service/logger.js";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { liveTails } from "../../shared/service/metrics.js";
import { natsFailure, type Nats } from "../../shared/nats/connection.js";
import { selectorSubject, type StreamSelector } from "../../shared/contract/subjects.js";
import { Tail } from "./tail.js";

export interface TailHubOptions {
  replayBufferEvents: number;
  lingerMs: number;
}

/**
 * Owns the live tails of one gateway: at most one per stream or subtree,
 * started by the first SSE client and stopped a little after the last one
 * leaves (the linger keeps the replay buffer warm for clients that reconnect).
 */
export class TailHub {
  private readonly tails = new Map<string, { tail: Tail; ready: Promise<Tail>; users: number; linger?: NodeJS.Timeout }>();

  constructor(
    private readonly nats: Nats,
    private readonly options: TailHubOptions,
    private readonly logger: Logger,
  ) {}

  /** Get (starting if needed) the tail for a selector; pair every acquire with one release. */
  async acquire(selector: StreamSelector): Promise<Tail> {
    if (!this.nats.isConnected()) throw new AgentmeshError("NATS_UNAVAILABLE");
    const filter = selectorSubject(selector, "events");
    let entry = this.tails.get(filter);
    if (entry === undefined) {
      const tail = new Tail(this.nats, filter, selectorSubject(selector, "live"), this.options.replayBufferEvents, this.logger, (ended) => {
        if (this.tails.get(filter)?.tail === ended) this.tails.delete(filter);
        liveTails.set(this.tails.size);
      });
      const ready = tail.start().then(() => tail);
      entry = { tail, ready, users: 0 };
      this.tails.set(filter, entry);
      liveTails.set(this.tails.size);
      ready.catch(() => {
        if (this.tails.get(filter)?.tail === tail) this.tails.delete(filter);
        tail.stop();
      });
    }
    entry.users += 1;
    if (entry.linger !== undefined) {
      clearTimeout(entry.linger);
      entry.linger = undefined;
    }
    try {
      return await entry.ready;
    } catch (err) {
      entry.users -= 1;
      throw natsFailure(err);
    }
  }

  release(tail: Tail): void {
    const entry = this.tails.get(tail.filter);
    if (entry?.tail !== tail) return;
    entry.users -= 1;
    if (entry.users > 0) return;
    entry.linger = setTimeout(() => {
      if (entry.users === 0) tail.stop();
    }, this.options.lingerMs);
    entry.linger.unref();
  }

  close(): void {
    for (const { tail, linger } of [...this.tails.values()]) {
      if (linger !== undefined) clearTimeout(linger);
      tail.stop();
    }
    this.tails.clear();
  }
}
