import { DeliverPolicy, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import type { Logger } from "../service/logger.js";
import { natsFailure, type Nats } from "./connection.js";

/**
 * The one way to follow a JetStream subject for as long as a service runs
 * (KV indexes, and whatever else must keep going): an ordered consumer that
 * resumes from the message after the last one it delivered whenever it may
 * have stopped, so `onMessage` sees every message once, in order.
 *
 * - After a reconnect, at once: an idle consumer can otherwise stay silent
 *   until the client's heartbeat check, tens of seconds later.
 * - After the loss of the server that hosted it (the client stays connected to
 *   another one, so no reconnect is seen): pulls expire every 2 s with 1 s
 *   heartbeats, so two missed heartbeats (about 2 s) make the client recreate
 *   it, instead of the default 30 s.
 * - When its messages end or its creation fails: again, with backoff, until stopped.
 */
export interface LastingConsumerOptions {
  /** The stream, and the subject filter within it (one subject or a wildcard). */
  stream: string;
  filter: string;
  /** Where the first consumer starts: the last message of each subject (a KV bucket's current values), or a sequence. */
  start: "last-per-subject" | { sequence: number };
  onMessage(m: JsMsg): void;
  /** Messages pulled at once (default 256). */
  pullMessages?: number;
  logger: Logger;
  /** What it follows, for logs. */
  what: string;
}

export interface LastingConsumer {
  /** Resolves once every message that existed at the start has been delivered. */
  readonly caughtUp: Promise<void>;
  stop(): void;
}

/** Pull expiry and heartbeat: how soon a consumer lost with its server is noticed (two missed heartbeats). */
const PULL_EXPIRES_MS = 2_000;
const IDLE_HEARTBEAT_MS = 1_000;
const MAX_RETRY_DELAY_MS = 1_000;
/** How long after it started a consumer may take to catch up before it is replaced. */
const CATCH_UP_STALL_MS = 5_000;
/** Notifications after which the consumer may deliver nothing more. */
const RESTART_ON: ReadonlySet<string> = new Set(["heartbeats_missed", "consumer_deleted", "consumer_not_found", "stream_not_found", "no_responders"]);

type OrderedConsumer = Awaited<ReturnType<Nats["js"]["consumers"]["get"]>>;

/** A replaced consumer is deleted, not left to its inactivity threshold: nothing orphaned (issue #20). */
function release(consumer: OrderedConsumer): void {
  void consumer.delete().catch(() => undefined);
}

export function followLasting(nats: Nats, options: LastingConsumerOptions): LastingConsumer {
  const state = { stopped: false, generation: 0 };
  /** Whether the run that started as `mine` is still the one that counts. */
  const current = (mine: number): boolean => !state.stopped && mine === state.generation;
  let messages: ConsumerMessages | undefined;
  let consumer: OrderedConsumer | undefined;
  /** The last sequence delivered: a replacement starts after it. */
  let lastSeq = 0;
  let startedAt = Date.now();
  const progress = { caughtUp: false };
  let resolveCaughtUp: () => void = () => undefined;
  const caughtUp = new Promise<void>((resolve) => (resolveCaughtUp = resolve));
  const markCaughtUp = (): void => {
    progress.caughtUp = true;
    resolveCaughtUp();
  };

  const startConfig = () => {
    if (lastSeq > 0) return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 };
    if (options.start === "last-per-subject") return { deliver_policy: DeliverPolicy.LastPerSubject };
    return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: options.start.sequence };
  };

  const run = async (mine: number): Promise<void> => {
    for (let delayMs = 100; current(mine); delayMs = Math.min(delayMs * 2, MAX_RETRY_DELAY_MS)) {
      let created: OrderedConsumer | undefined;
      try {
        created = await nats.js.consumers.get(options.stream, { filter_subjects: options.filter, ...startConfig() });
        // A run that was replaced meanwhile must not take the shared handles from its successor.
        if (!current(mine)) {
          release(created);
          return;
        }
        consumer = created;
        // Nothing to replay: caught up at once (the iterator would wait for a first message). Asked only until then:
        // during an election every request may wait out its timeout, and a replacement needs none.
        if (!progress.caughtUp && (await created.info(true)).num_pending === 0) markCaughtUp();
        const pulled = await created.consume({ max_messages: options.pullMessages ?? 256, expires: PULL_EXPIRES_MS, idle_heartbeat: IDLE_HEARTBEAT_MS });
        if (!current(mine)) {
          pulled.stop();
          release(created);
          return;
        }
        messages = pulled;
        void watchStatus(pulled, mine);
        for await (const m of pulled) {
          if (!current(mine)) break;
          lastSeq = m.seq;
          // Back off afresh only once a consumer has proved itself: one that dies at once must not be recreated every 100 ms.
          delayMs = 100;
          options.onMessage(m);
          if (m.info.pending === 0) markCaughtUp();
        }
      } catch (err) {
        if (!current(mine)) return;
        options.logger.warn({ err, what: options.what }, "lasting consumer failed; starting it again");
      } finally {
        // Its messages ended or failed by themselves: the server's consumer goes too, not left to its inactivity threshold.
        if (created !== undefined && current(mine)) release(created);
      }
      if (!current(mine)) return;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  };

  /**
   * The client's own recovery of an ordered consumer whose server went away was seen to never resume on 2.9
   * (a watch silent for a minute and more): on the first sign of trouble, a new consumer starts after the last
   * message instead.
   */
  const watchStatus = async (pulled: ConsumerMessages, mine: number): Promise<void> => {
    for await (const status of pulled.status()) {
      if (!current(mine)) return;
      if (RESTART_ON.has(status.type)) {
        options.logger.warn({ what: options.what, status }, "lasting consumer interrupted; starting it again");
        restart();
        return;
      }
    }
  };

  const restart = (): void => {
    if (state.stopped) return;
    startedAt = Date.now();
    const mine = ++state.generation;
    messages?.stop();
    if (consumer !== undefined) release(consumer);
    void run(mine);
  };
  const unsubscribe = nats.onReconnect(restart);
  // A consumer that has not caught up a while after it started is replaced (the new one starts after the last
  // message delivered, so nothing is lost or repeated): on 2.9.10 a new watch was seen, now and then, never to
  // report itself caught up, with no status to say why, which hung its service's start.
  const stall = setInterval(() => {
    if (!progress.caughtUp && Date.now() - startedAt > CATCH_UP_STALL_MS) {
      options.logger.warn({ what: options.what }, "lasting consumer not caught up in time; starting it again");
      restart();
    }
  }, 1_000);
  stall.unref();
  void caughtUp.then(() => { clearInterval(stall); });
  restart();
  return {
    caughtUp,
    stop: () => {
      state.stopped = true;
      state.generation += 1;
      clearInterval(stall);
      unsubscribe();
      messages?.stop();
      if (consumer !== undefined) release(consumer);
    },
  };
}

/**
 * A bounded read by the same rules: an ordered consumer of `filter` from a sequence (inclusive) or a time, replaced
 * after a reconnect or the loss of its server (its heartbeats missed: ~2 s rather than the client's 30 s), the new
 * one starting after the last message the reader took. It ends after `until`, or when the consumer has nothing
 * pending; the caller must know a matching message exists at or after `from`, or the read waits for one.
 */
export interface LastingRead {
  stream: string;
  filter: string;
  from: number | Date;
  until: number;
  /** Messages pulled at once. */
  batch: number;
}

export async function* readLasting(nats: Nats, read: LastingRead): AsyncGenerator<JsMsg, void> {
  let next = read.from;
  for (let resumed = false; ; resumed = true) {
    const session = await openReadSession(nats, read, next, resumed);
    try {
      for await (const m of session.messages) {
        if (m.seq > read.until) return;
        yield m;
        next = m.seq + 1;
        if (m.info.pending === 0 || m.seq === read.until) return;
      }
      if (!session.interrupted()) return;
    } finally {
      session.close();
    }
  }
}

/**
 * readLasting with a callback: for long reads whose every message is handled at once (a processor rebuilding a
 * stream's state), since each layer of async iteration costs a promise per message (~12% of rebuilding 100,000
 * events through two layers).
 */
export async function eachLasting(nats: Nats, read: LastingRead, onMessage: (m: JsMsg) => void): Promise<void> {
  let next = read.from;
  for (let resumed = false; ; resumed = true) {
    const session = await openReadSession(nats, read, next, resumed);
    try {
      for await (const m of session.messages) {
        if (m.seq > read.until) return;
        onMessage(m);
        next = m.seq + 1;
        if (m.info.pending === 0 || m.seq === read.until) return;
      }
      if (!session.interrupted()) return;
    } finally {
      session.close();
    }
  }
}

interface ReadSession {
  messages: ConsumerMessages;
  /** Its messages ended early (a reconnect, or its server lost): read on after the last one, with a new session. */
  interrupted(): boolean;
  close(): void;
}

/**
 * An ordered consumer of `filter` from a sequence (inclusive) or a time, already pulling with `pull`; the caller
 * stops it and deletes the consumer. Failures are NATS_UNAVAILABLE or INTERNAL (natsFailure).
 */
export async function openOrdered(nats: Nats, stream: string, filter: string, from: number | Date, pull: { max_messages: number; expires?: number; idle_heartbeat?: number }): Promise<{ consumer: OrderedConsumer; messages: ConsumerMessages }> {
  const start =
    typeof from === "number"
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }
      : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: from.toISOString() };
  let consumer: OrderedConsumer;
  try {
    consumer = await nats.js.consumers.get(stream, { filter_subjects: filter, ...start });
  } catch (err) {
    throw natsFailure(err);
  }
  try {
    return { consumer, messages: await consumer.consume(pull) };
  } catch (err) {
    release(consumer);
    throw natsFailure(err);
  }
}

/** How long a read that lost its consumer keeps trying to get another (an election can take seconds). */
const RESUME_WITHIN_MS = 30_000;

/**
 * The first session of a read fails at once, as any request would; one that resumes an interrupted read tries again
 * with backoff while the cluster settles, up to RESUME_WITHIN_MS.
 */
async function openReadSession(nats: Nats, read: LastingRead, from: number | Date, resuming: boolean): Promise<ReadSession> {
  const pull = { max_messages: read.batch, expires: PULL_EXPIRES_MS, idle_heartbeat: IDLE_HEARTBEAT_MS };
  const deadline = Date.now() + RESUME_WITHIN_MS;
  let opened: Awaited<ReturnType<typeof openOrdered>> | undefined;
  for (let delayMs = 100; opened === undefined; delayMs = Math.min(delayMs * 2, MAX_RETRY_DELAY_MS)) {
    try {
      opened = await openOrdered(nats, read.stream, read.filter, from, pull);
    } catch (err) {
      if (!resuming || nats.nc.isClosed() || Date.now() + delayMs > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
  const { consumer, messages } = opened;
  let interrupted = false;
  const interrupt = (): void => {
    interrupted = true;
    messages.stop();
  };
  const unsubscribe = nats.onReconnect(interrupt);
  void (async () => {
    for await (const status of messages.status()) {
      // The client's own reset of a read that started at a time asks for a sequence and a time at once, which 2.9
      // refuses, for ever: a new session starts by sequence instead.
      if (RESTART_ON.has(status.type) || (status.type === "reset" && from instanceof Date)) {
        interrupt();
        return;
      }
    }
  })();
  return {
    messages,
    interrupted: () => interrupted,
    close: () => {
      unsubscribe();
      messages.stop();
      release(consumer);
    },
  };
}
