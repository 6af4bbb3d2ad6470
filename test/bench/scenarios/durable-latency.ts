import { setTimeout as sleep } from "node:timers/promises";
import { append, createStream, longPoll, tailOffset } from "../support/durable-streams-http.js";
import { keepAliveAgent } from "../support/http.js";
import { summarise, type LatencySummary } from "../support/stats.js";

/**
 * Durable Streams append -> live read latency, closed loop: a reader holds a
 * long-poll at the stream's tail, a writer POSTs one message, and the sample
 * is the time from just before the POST to the last byte of the poll's
 * answer, both taken in this process. One message at a time, so a sample is
 * one server's wake-up path and never queueing behind other messages.
 *
 * Long-poll rather than SSE because it is the protocol's baseline live mode
 * (every server has it, SSE is optional for non-text streams) and each answer
 * carries exactly one message, so receipt is unambiguous.
 */

export interface DurableLatencyOptions {
  /** The stream's URL; it is created here. */
  streamUrl: string;
  contentType: string;
  messageBytes: number;
  samples: number;
  /** Untimed rounds first, so both servers' JITs and the connections are warm. */
  warmupSamples: number;
  /**
   * Pause between the poll going out and the append, so the server has parked
   * the poll (a poll that arrives after the data answers at once, which would
   * be a catch-up read, not a live one).
   */
  parkMs: number;
}

export interface DurableLatencyResult {
  samples: number;
  messageBytes: number;
  /** POST sent -> the message's bytes received by the waiting long-poll. */
  delivery: LatencySummary;
  /** POST sent -> its 204, for context: delivery does not wait for it. */
  appendRoundTrip: LatencySummary;
  /** Polls that timed out (204) and were renewed while waiting; expected 0. */
  renewedPolls: number;
}

/** A message that names its round, padded to the size asked for. */
function message(round: number, bytes: number): Buffer {
  const head = `round ${round} `;
  return Buffer.from(head + "x".repeat(Math.max(0, bytes - head.length)));
}

export async function durableLatency(options: DurableLatencyOptions): Promise<DurableLatencyResult> {
  // One socket each, so the reader's poll never waits behind the writer's POST.
  const reader = keepAliveAgent(1);
  const writer = keepAliveAgent(1);
  const { streamUrl: url, contentType } = options;
  try {
    await createStream(writer, url, contentType);
    let offset = await tailOffset(reader, url);
    let cursor: string | undefined;
    let renewedPolls = 0;

    /** Poll until the next message arrives; it must be exactly `expected`. */
    const receive = async (expected: Buffer): Promise<number> => {
      for (;;) {
        const reply = await longPoll(reader, url, offset, cursor);
        offset = reply.nextOffset;
        cursor = reply.cursor ?? cursor;
        if (reply.body.length === 0) {
          renewedPolls += 1;
          continue;
        }
        if (!reply.body.equals(expected)) throw new Error(`the long-poll returned ${JSON.stringify(reply.body.toString("utf8").slice(0, 80))} instead of ${JSON.stringify(expected.toString("utf8").slice(0, 80))}`);
        return reply.endedAt;
      }
    };

    const delivery: number[] = [];
    const roundTrips: number[] = [];
    const total = options.warmupSamples + options.samples;
    for (let round = 0; round < total; round++) {
      const body = message(round, options.messageBytes);
      const received = receive(body);
      // Should the append fail, the poll is still pending; it must not become an unhandled rejection.
      received.catch(() => undefined);
      await sleep(options.parkMs);
      const sentAt = performance.now();
      const appended = append(writer, url, contentType, body).then(() => performance.now() - sentAt);
      const [receivedAt, roundTrip] = await Promise.all([received, appended]);
      if (round >= options.warmupSamples) {
        delivery.push(receivedAt - sentAt);
        roundTrips.push(roundTrip);
      }
    }
    return { samples: options.samples, messageBytes: options.messageBytes, delivery: summarise(delivery), appendRoundTrip: summarise(roundTrips), renewedPolls };
  } finally {
    reader.destroy();
    writer.destroy();
  }
}
