import { DeliverPolicy, type JetStreamClient } from "@nats-io/jetstream";
import { eventsSubject, parseStreamPath } from "../../../shared/contract/subjects.js";
import { storedEventBytes } from "../support/events.js";
import { perSecond } from "../support/stats.js";

/**
 * What JetStream does without the gateway, measured from Node with the same
 * v3 client the gateway uses, against the same stream. These are the
 * denominators of every ratio in the report.
 */

export interface RateResult {
  count: number;
  ms: number;
  perSec: number;
}

export interface RawPublishOptions {
  /** Path whose subject receives the messages (same stream as the gateway's events). */
  path: string;
  maxMessages: number;
  maxMs: number;
  /** Unacknowledged publishes kept in flight. */
  window: number;
  /** Published first and not timed, so the JIT and the store are warm (a 2 s run is otherwise noisy). */
  warmupMessages: number;
}

/** One JetStream publish, resolved on its ack. */
export type Publish = (subject: string, payload: Uint8Array) => Promise<unknown>;

export async function rawPublish(publish: Publish, options: RawPublishOptions): Promise<RateResult> {
  await publishWindowed(publish, { ...options, maxMessages: options.warmupMessages });
  return publishWindowed(publish, options);
}

/** `window` publishers each await their own ack before the next publish: at most `window` acks outstanding. */
async function publishWindowed(publish: Publish, options: RawPublishOptions): Promise<RateResult> {
  const subject = eventsSubject(parseStreamPath(options.path));
  const payload = storedEventBytes();
  let sent = 0;
  let acked = 0;
  const start = performance.now();
  const deadline = start + options.maxMs;
  const publisher = async (): Promise<void> => {
    while (sent < options.maxMessages && performance.now() < deadline) {
      sent += 1;
      await publish(subject, payload);
      acked += 1;
    }
  };
  await Promise.all(Array.from({ length: options.window }, publisher));
  const ms = performance.now() - start;
  return { count: acked, ms, perSec: perSecond(acked, ms) };
}

/**
 * Read `expected` messages on one subject through an ordered consumer that
 * starts where the gateway's catch-up starts (offset 0 => sequence 1), so the
 * server skips exactly the same foreign messages. Messages are counted, not
 * decoded: this is the transport's ceiling.
 */
export async function rawOrderedRead(js: JetStreamClient, streamName: string, path: string, expected: number): Promise<RateResult> {
  const start = performance.now();
  const consumer = await js.consumers.get(streamName, {
    filter_subjects: eventsSubject(parseStreamPath(path)),
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: 1,
  });
  const messages = await consumer.consume({ max_messages: 1000 });
  let count = 0;
  let bytes = 0;
  for await (const m of messages) {
    count += 1;
    bytes += m.data.byteLength;
    if (count >= expected || m.info.pending === 0) break;
  }
  const ms = performance.now() - start;
  messages.stop();
  await consumer.delete().catch(() => undefined);
  if (count !== expected) throw new Error(`raw read got ${count} messages, expected ${expected}`);
  if (bytes === 0) throw new Error("raw read got empty messages");
  return { count, ms, perSec: perSecond(count, ms) };
}
