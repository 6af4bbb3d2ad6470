import { readFileSync } from "node:fs";

/**
 * What the soak reads from nats-server's monitoring endpoints (`-m`): the
 * JetStream API counter and the EVENTS stream's state from `/jsz`, the
 * server's inbound message counter from `/varz`, and the consumers of EVENTS.
 * Nothing here talks to NATS itself, so the soak adds no JetStream API call
 * of its own to the counters it reports.
 */

/** One reading of the counters; all cumulative since the server started, except the stream's state. */
export interface ServerSample {
  /** JetStream API requests the server handled (`/jsz` `api.total`): stream and consumer management, info, deletes. Direct gets, publishes, pull requests and acks are not counted there. */
  apiTotal: number;
  apiErrors: number;
  /** Messages clients sent the server (`/varz` `in_msgs`): publishes, direct gets, pull requests, acks, API calls; the whole request load. */
  inMsgs: number;
  /** Messages stored in the EVENTS stream. */
  eventsMessages: number;
  /** Consumers on the EVENTS stream right now. */
  eventsConsumers: number;
  /** Consumers on every stream (EVENTS and the services' KV buckets). */
  allConsumers: number;
}

export interface ConsumerDetail {
  name: string;
  created: string;
  /** Durable consumers have a name they were created with; ordered (ephemeral) ones do not. */
  durable: boolean;
  filter: string;
  numPending: number;
  numAckPending: number;
  numWaiting: number;
  /** Nanoseconds; ordered consumers get 5 minutes from @nats-io/jetstream. */
  inactiveThresholdNs: number | null;
}

interface JszConsumer {
  name: string;
  created: string;
  config?: { durable_name?: string; filter_subject?: string; filter_subjects?: string[]; inactive_threshold?: number };
  num_pending?: number;
  num_ack_pending?: number;
  num_waiting?: number;
}

interface JszStream {
  name: string;
  state: { messages: number; consumer_count: number };
  consumer_detail?: JszConsumer[];
}

interface Jsz {
  api: { total: number; errors: number };
  consumers: number;
  account_details?: { stream_detail?: JszStream[] }[];
}

export class ServerMonitor {
  constructor(
    private readonly monitorUrl: string,
    private readonly streamName = "EVENTS",
  ) {}

  private async get<T>(path: string): Promise<T> {
    const reply = await fetch(`${this.monitorUrl}${path}`, { signal: AbortSignal.timeout(10_000) });
    if (!reply.ok) throw new Error(`nats-server monitoring ${path} answered ${reply.status}`);
    return (await reply.json()) as T;
  }

  private async events(consumers: boolean): Promise<{ jsz: Jsz; stream: JszStream | undefined }> {
    const jsz = await this.get<Jsz>(`/jsz?streams=true${consumers ? "&consumers=true&config=true" : ""}`);
    const stream = (jsz.account_details ?? []).flatMap((account) => account.stream_detail ?? []).find((s) => s.name === this.streamName);
    return { jsz, stream };
  }

  async sample(): Promise<ServerSample> {
    const [{ jsz, stream }, varz] = await Promise.all([this.events(false), this.get<{ in_msgs: number }>("/varz")]);
    return {
      apiTotal: jsz.api.total,
      apiErrors: jsz.api.errors,
      inMsgs: varz.in_msgs,
      eventsMessages: stream?.state.messages ?? 0,
      eventsConsumers: stream?.state.consumer_count ?? 0,
      allConsumers: jsz.consumers,
    };
  }

  /** Every consumer of the EVENTS stream, with its configuration. */
  async consumers(): Promise<ConsumerDetail[]> {
    const { stream } = await this.events(true);
    return (stream?.consumer_detail ?? []).map((c) => ({
      name: c.name,
      created: c.created,
      durable: c.config?.durable_name !== undefined && c.config.durable_name !== "",
      filter: c.config?.filter_subject ?? c.config?.filter_subjects?.join(",") ?? "",
      numPending: c.num_pending ?? 0,
      numAckPending: c.num_ack_pending ?? 0,
      numWaiting: c.num_waiting ?? 0,
      inactiveThresholdNs: c.config?.inactive_threshold ?? null,
    }));
  }
}

/** Resident set size of a process in MB (VmRSS of /proc/<pid>/status); null once it has exited. */
export function rssMb(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match?.[1] === undefined ? null : Math.round((Number(match[1]) / 1024) * 10) / 10;
  } catch {
    return null;
  }
}
