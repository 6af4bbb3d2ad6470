import type { ConsumerInfo } from "@nats-io/jetstream";
import { AgentmeshError } from "../../shared/contract/errors.js";
import { pathOfSubject } from "../../shared/contract/subjects.js";
import { natsFailure, type Nats } from "../../shared/nats/connection.js";
import type { ProcessorConsumer } from "../../shared/contract/http-bodies.js";

const PROCESSOR_PREFIX = "processor-";
const WEBHOOK_PREFIX = "webhook-";

/** `events.a.b` as `/a/b`, `events.a.>` as `/a/**`; null without a filter. */
function streamOf(filter: string | undefined): string | null {
  if (filter === undefined || filter === "" || filter === "events.>") return null;
  if (filter.endsWith(".>")) {
    const prefix = pathOfSubject(filter.slice(0, -2));
    return prefix === null ? filter : `${prefix}/**`;
  }
  return pathOfSubject(filter) ?? filter;
}

function describe(info: ConsumerInfo): ProcessorConsumer | null {
  const consumer = info.name;
  const kind = consumer.startsWith(PROCESSOR_PREFIX) ? "processor" : consumer.startsWith(WEBHOOK_PREFIX) ? "webhook-subscription" : null;
  if (kind === null) return null;
  const waitingPulls = info.num_waiting;
  return {
    name: kind === "processor" ? consumer.slice(PROCESSOR_PREFIX.length) : consumer,
    kind,
    consumer,
    stream: streamOf(info.config.filter_subject),
    pending: info.num_pending,
    ackPending: info.num_ack_pending,
    redelivered: info.num_redelivered,
    ackFloor: info.ack_floor.stream_seq,
    delivered: info.delivered.stream_seq,
    waitingPulls,
    // A running replica always keeps a pull request open (or holds messages it is working on): a consumer with
    // neither has no replica taking its events, whether or not any are waiting yet.
    healthy: waitingPulls > 0 || info.num_ack_pending > 0,
    createdAt: info.created,
  };
}

/** The durable consumers of the processors and webhook subscriptions on the events stream, from JetStream's own counters. */
export async function listProcessorConsumers(nats: Nats): Promise<ProcessorConsumer[]> {
  if (!nats.isConnected()) throw new AgentmeshError("NATS_UNAVAILABLE");
  try {
    const found: ProcessorConsumer[] = [];
    for await (const listed of nats.jsm.consumers.list(nats.streamName)) {
      // The server lists a consumer deleted while it was listing as null, whatever the client's types say.
      const info = listed as ConsumerInfo | null;
      if (info === null || info.config.durable_name === undefined) continue;
      const described = describe(info);
      if (described !== null) found.push(described);
    }
    return found.sort((a, b) => (a.kind === b.kind ? a.name.localeCompare(b.name) : a.kind === "processor" ? -1 : 1));
  } catch (err) {
    throw natsFailure(err);
  }
}
