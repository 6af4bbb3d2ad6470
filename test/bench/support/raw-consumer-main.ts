/**
 * The raw baseline of the processor benchmarks (test/bench/processors.ts): what a bare Node NATS client does with
 * a durable pull consumer, with none of agentmesh's runtime. Its own process, like a processor.
 *   RAW_MODE=drain: consume and ack each message, nothing decoded.
 *   RAW_MODE=hop:   parse each message's JSON body and, for a `job/requested`, publish a reaction to the same
 *                   subject (js.publish, waiting for its ack), then ack: the least a processor that reacts must do.
 * The consumer has the runtime's settings (explicit ack, deliver new, 1,000 unacknowledged, pulls of 64).
 * Prints READY once it is pulling.
 */
import { connect } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, JetStreamApiError } from "@nats-io/jetstream";

const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const mode = process.env.RAW_MODE === "hop" ? "hop" : "drain";
const durable = process.env.RAW_DURABLE ?? `raw-${mode}`;
const filter = process.env.RAW_FILTER ?? "events.>";
const streamName = process.env.EVENTS_STREAM ?? "EVENTS";

const nc = await connect({ servers: url, noAsyncTraces: true, name: durable });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);
try {
  await jsm.consumers.info(streamName, durable);
} catch (err) {
  if (!(err instanceof JetStreamApiError) || err.status !== 404) throw err;
  await jsm.consumers.add(streamName, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New, ...(filter === "" ? {} : { filter_subject: filter }), max_ack_pending: 1000, ack_wait: 30_000_000_000 });
}
const consumer = await js.consumers.get(streamName, durable);
const messages = await consumer.consume({ max_messages: Number(process.env.RAW_BATCH ?? "64") });
process.stdout.write("READY\n");
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    messages.stop();
    void nc.drain().then(() => process.exit(0));
  });
}
const encoder = new TextEncoder();
for await (const m of messages) {
  if (mode === "hop" && (JSON.parse(new TextDecoder().decode(m.data)) as { type?: unknown }).type === "job/requested") {
    const reaction = `{"type":"job/done","payload":{"for":${m.seq}},"createdAt":"${new Date().toISOString()}","source":{"processor":"${durable}","causationOffset":${m.seq}}}`;
    await js.publish(m.subject, encoder.encode(reaction));
  }
  m.ack();
}
