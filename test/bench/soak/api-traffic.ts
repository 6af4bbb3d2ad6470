import { connect, type NatsConnection } from "@nats-io/transport-node";

/**
 * Who makes which JetStream API requests. A core NATS subscription to
 * `$JS.API.>` receives a copy of every request (it never answers, so nothing
 * changes for the services), and the request's reply subject names the
 * connection that sent it: `_INBOX.<prefix>.…`, where the prefix is one of
 * that connection's inbox subscriptions, listed with the connection's name by
 * `/connz?subs=detail`. It sees what `/jsz` does not count (direct gets, pull
 * requests) and tells the services apart. Pull requests of short-lived
 * consumers come from inboxes gone by the time names are resolved: they are
 * counted under "(closed inbox)".
 */

/** API kinds, longest first so that `CONSUMER.DURABLE.CREATE` wins over `CONSUMER.CREATE`... */
const KINDS = [
  "CONSUMER.DURABLE.CREATE", "CONSUMER.MSG.NEXT", "CONSUMER.LEADER.STEPDOWN", "STREAM.MSG.GET", "STREAM.MSG.DELETE", "STREAM.LEADER.STEPDOWN",
  "CONSUMER.CREATE", "CONSUMER.DELETE", "CONSUMER.INFO", "CONSUMER.LIST", "CONSUMER.NAMES",
  "STREAM.CREATE", "STREAM.UPDATE", "STREAM.DELETE", "STREAM.INFO", "STREAM.LIST", "STREAM.NAMES", "STREAM.PURGE",
  "DIRECT.GET", "INFO",
];

/** `$JS.API.CONSUMER.CREATE.EVENTS.x.y` → `CONSUMER.CREATE EVENTS`; a KV bucket's stream is shown as `KV`. */
export function apiKind(subject: string): string {
  const rest = subject.slice("$JS.API.".length);
  const kind = KINDS.find((k) => rest === k || rest.startsWith(`${k}.`)) ?? rest.split(".").slice(0, 2).join(".");
  const stream = rest.slice(kind.length + 1).split(".")[0] ?? "";
  return stream === "" ? kind : `${kind} ${stream.startsWith("KV_") ? "KV" : stream}`;
}

/** Kinds that create a consumer. */
export function createsConsumer(kind: string): boolean {
  return kind.startsWith("CONSUMER.CREATE") || kind.startsWith("CONSUMER.DURABLE.CREATE");
}

interface Connz {
  connections: { name?: string; cid: number; subscriptions_list_detail?: { subject: string }[] }[];
}

function inboxPrefix(reply: string | undefined): string {
  if (reply === undefined || reply === "") return "(no reply)";
  return reply.split(".").slice(0, 2).join(".");
}

/** Counts keyed by reply prefix and kind; names are resolved when counts are read. */
export class ApiTraffic {
  private window = new Map<string, number>();
  private readonly names = new Map<string, string>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly monitorUrl: string,
  ) {}

  static async start(natsUrl: string, monitorUrl: string): Promise<ApiTraffic> {
    const nc = await connect({ servers: natsUrl, name: "soak-api-traffic", noAsyncTraces: true });
    const traffic = new ApiTraffic(nc, monitorUrl);
    nc.subscribe("$JS.API.>", {
      callback: (err, msg) => {
        if (err !== null) return;
        const key = `${inboxPrefix(msg.reply)}\u0000${apiKind(msg.subject)}`;
        traffic.window.set(key, (traffic.window.get(key) ?? 0) + 1);
      },
    });
    await nc.flush();
    return traffic;
  }

  async close(): Promise<void> {
    await this.nc.close();
  }

  private async resolveNames(): Promise<void> {
    const connz = (await (await fetch(`${this.monitorUrl}/connz?subs=detail&limit=1000`, { signal: AbortSignal.timeout(10_000) })).json()) as Connz;
    for (const conn of connz.connections) {
      const name = conn.name ?? `cid ${conn.cid}`;
      for (const sub of conn.subscriptions_list_detail ?? []) {
        if (sub.subject.startsWith("_INBOX.")) this.names.set(inboxPrefix(sub.subject), name);
      }
    }
  }

  /** Requests since the last call, by `<connection name>: <kind>`. */
  async takeWindow(): Promise<Record<string, number>> {
    const window = this.window;
    this.window = new Map();
    await this.resolveNames().catch(() => undefined);
    const counts: Record<string, number> = {};
    for (const [key, count] of window) {
      const [prefix = "", kind = ""] = key.split("\u0000");
      const client = prefix.startsWith("_INBOX.") ? (this.names.get(prefix) ?? "(closed inbox)") : prefix;
      const label = `${client}: ${kind}`;
      counts[label] = (counts[label] ?? 0) + count;
    }
    return counts;
  }
}

export function addCounts(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [key, count] of Object.entries(from)) into[key] = (into[key] ?? 0) + count;
}
