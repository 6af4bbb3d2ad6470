import type { ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import type { Nats } from "../../shared/nats/connection.js";
import { openOrderedRead } from "../../shared/log/read.js";

/**
 * Paged reads that continue where the previous page ended keep its ordered
 * consumer instead of creating a new one: a client paging through a stream
 * (`?after=<nextOffset>`) then costs no consumer round trips per page, and
 * the consumer has already pulled the next page while this one was being
 * sent. A kept read is parked under (filter, next sequence) for a short time
 * and used by at most one request at a time.
 */

export interface OpenRead {
  readonly filter: string;
  /** Where the next page starts: the sequence after the last message read. */
  from: number;
  /** The next message, or null if the consumer stopped (NATS trouble). */
  nextMessage(): Promise<JsMsg | null>;
  /** Give back a message read past the page's end: it is the next page's first. */
  hold(m: JsMsg): void;
}

class KeptRead implements OpenRead {
  private held: JsMsg | undefined;
  private readonly iterator: AsyncIterator<JsMsg>;
  private watchdog: NodeJS.Timeout | undefined;
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly filter: string,
    public from: number,
    private readonly messages: ConsumerMessages,
    private readonly consumer: { delete(): Promise<boolean> },
  ) {
    this.iterator = messages[Symbol.asyncIterator]();
  }

  async nextMessage(): Promise<JsMsg | null> {
    const held = this.held;
    if (held !== undefined) {
      this.held = undefined;
      return held;
    }
    // Called only when a message is known to exist, which a working consumer delivers in milliseconds: one that
    // does not within the limit is stuck (see the constructor of ReadCursors), and the read ends rather than hangs.
    // One timer per read, pushed back on each call: a timer per message would cost more than the message.
    if (this.watchdog === undefined) {
      this.watchdog = setTimeout(() => {
        this.messages.stop();
      }, STUCK_MS);
    } else this.watchdog.refresh();
    const result = await this.iterator.next();
    return result.done === true ? null : result.value;
  }

  /** Parked: nothing is read until the next page. */
  idle(): void {
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }

  hold(m: JsMsg): void {
    this.held = m;
  }

  close(): void {
    this.idle();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.messages.stop();
    void this.consumer.delete().catch(() => undefined);
  }
}

/** How long a message known to exist may take to arrive before the read is taken as stuck. */
const STUCK_MS = 5000;
/** How long a read waits for its next page, and how many may wait at once (each holds up to a page of messages). */
const LINGER_MS = 10_000;
const MAX_PARKED = 16;

export class ReadCursors {
  private readonly parked = new Map<string, KeptRead>();
  private closed = false;

  constructor(private readonly nats: Nats) {
    // An idle consumer may not resume delivering after a reconnect until the client's heartbeat check resets it
    // (tens of seconds): parked reads are dropped on any connection change, and the next page starts afresh.
    void (async () => {
      for await (const status of nats.nc.status()) {
        if (status.type === "disconnect" || status.type === "reconnect") this.dropParked();
      }
    })().catch(() => undefined);
  }

  /**
   * A read of `filter` from sequence `from`: the one a previous page parked
   * there, or a new consumer pulling `pageSize` messages at a time (so a
   * parked read holds about one page, whatever the events' size).
   */
  async open(filter: string, from: number, pageSize: number): Promise<OpenRead> {
    const key = `${filter} ${from}`;
    const kept = this.parked.get(key);
    if (kept !== undefined) {
      this.parked.delete(key);
      clearTimeout(kept.timer);
      return kept;
    }
    const { consumer, messages } = await openOrderedRead(this.nats, filter, from, pageSize);
    return new KeptRead(filter, from, messages, consumer);
  }

  /** Keep a read whose client will likely ask for the page from `read.from`. */
  park(read: OpenRead): void {
    if (!(read instanceof KeptRead)) return;
    const key = `${read.filter} ${read.from}`;
    if (this.closed || this.parked.has(key) || this.parked.size >= MAX_PARKED) {
      read.close();
      return;
    }
    read.idle();
    read.timer = setTimeout(() => {
      if (this.parked.get(key) === read) this.parked.delete(key);
      read.close();
    }, LINGER_MS);
    read.timer.unref();
    this.parked.set(key, read);
  }

  /** Done with a read that will not be continued. */
  close(read: OpenRead): void {
    if (read instanceof KeptRead) read.close();
  }

  /** At shutdown: drop what is parked, and park nothing more. */
  closeAll(): void {
    this.closed = true;
    this.dropParked();
  }

  private dropParked(): void {
    for (const read of this.parked.values()) read.close();
    this.parked.clear();
  }
}
