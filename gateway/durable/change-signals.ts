import type { Subscription } from "@nats-io/transport-node";
import type { Logger } from "../../shared/service/logger.js";
import { natsFailure, type Nats } from "../../shared/nats/connection.js";
import { readChange, type ChangeNotice } from "./change-notice.js";

export type WaitOutcome = "changed" | "timeout" | "aborted";

/** One live reader's view of a subject: remembers a change that came before it started waiting. */
export class ChangeListener {
  private pending = false;
  private notice: ChangeNotice | null = null;
  /** The notice of the change the last `next()` returned for, taken when it returned. */
  private taken: ChangeNotice | null = null;
  private wake: (() => void) | undefined;

  constructor(private readonly detach: (listener: ChangeListener) => void) {}

  notify(notice: ChangeNotice | null): void {
    // One notice describes one change: after two, the reader must read what both did.
    this.notice = this.pending ? null : notice;
    this.pending = true;
    this.wake?.();
  }

  /** The notice of the one change the last `next()` returned "changed" for, if it came with one (once). */
  takeNotice(): ChangeNotice | null {
    const notice = this.taken;
    this.taken = null;
    return notice;
  }

  /** The change is the reader's now: a notice arriving later belongs to the next wait. */
  private consume(): void {
    this.pending = false;
    this.taken = this.notice;
    this.notice = null;
  }

  /** Resolves on the next change (or one that already came), the timeout, or the abort. */
  next(timeoutMs: number, signal: AbortSignal): Promise<WaitOutcome> {
    this.taken = null;
    if (this.pending) {
      this.consume();
      return Promise.resolve("changed");
    }
    if (signal.aborted) return Promise.resolve("aborted");
    return new Promise((resolve) => {
      const finish = (outcome: WaitOutcome): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.wake = undefined;
        if (outcome === "changed") this.consume();
        resolve(outcome);
      };
      const onAbort = (): void => { finish("aborted"); };
      const timer = setTimeout(() => { finish("timeout"); }, timeoutMs);
      signal.addEventListener("abort", onAbort, { once: true });
      this.wake = () => { finish("changed"); };
    });
  }

  close(): void {
    this.detach(this);
  }
}

/**
 * Wake-ups for long-poll and SSE readers: one core NATS subscription per
 * subject, shared by every reader of it in this gateway. A signal only says
 * "look again"; what changed is always read from the stream and its record.
 */
export class ChangeSignals {
  private readonly subjects = new Map<string, { subscription: Subscription; listeners: Set<ChangeListener>; ready: Promise<void> }>();

  constructor(
    private readonly nats: Nats,
    private readonly logger: Logger,
  ) {}

  /** Listen before reading the state, so that no change between the read and the wait is missed. */
  async listen(subject: string): Promise<ChangeListener> {
    let entry = this.subjects.get(subject);
    if (entry === undefined) {
      const subscription = this.nats.nc.subscribe(subject, {
        callback: (_err, msg) => {
          const notice = readChange(msg);
          for (const l of this.subjects.get(subject)?.listeners ?? []) l.notify(notice);
        },
      });
      // The server must know the subscription before a reader reads the state it guards.
      entry = { subscription, listeners: new Set(), ready: this.nats.nc.flush() };
      this.subjects.set(subject, entry);
    }
    const listener = new ChangeListener((l) => { this.detach(subject, l); });
    entry.listeners.add(listener);
    try {
      await entry.ready;
    } catch (err) {
      listener.close();
      throw natsFailure(err);
    }
    return listener;
  }

  private detach(subject: string, listener: ChangeListener): void {
    const entry = this.subjects.get(subject);
    if (entry === undefined) return;
    entry.listeners.delete(listener);
    if (entry.listeners.size === 0) {
      this.subjects.delete(subject);
      entry.subscription.unsubscribe();
      this.logger.trace({ subject }, "change subscription dropped");
    }
  }

  close(): void {
    for (const entry of this.subjects.values()) entry.subscription.unsubscribe();
    this.subjects.clear();
  }
}
