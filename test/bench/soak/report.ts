import { percentile } from "../support/stats.js";
import { createsConsumer } from "./api-traffic.js";
import type { AppendWindow } from "./appender.js";
import type { LogCounts } from "./logs.js";
import { sumCounts } from "./logs.js";
import type { GoMemStats } from "./mesh.js";
import type { ServerSample } from "./monitor.js";
import type { ReaderWindow } from "./reader.js";
import type { SseWindow } from "./sse-clients.js";

/** One minute of the soak. */
export interface MinuteRow {
  minute: number;
  appends: { ok: number; errors: number; agentInputs: number; p50Ms: number; p99Ms: number; maxMs: number; maxLagMs: number };
  /** Resident set size at the end of the minute, MB, per process (nats-server and each service). */
  rssMb: Record<string, number | null>;
  /** With --nats-heap-profile: nats-server's Go memory at the end of the minute (mesh.ts GoMemStats). */
  natsHeap: GoMemStats | null;
  /** JetStream API calls during the minute (`/jsz` api.total delta) and the API errors among them. */
  apiCalls: number;
  apiErrors: number;
  /** Messages added to the EVENTS stream during the minute. */
  storedEvents: number;
  apiPerEvent: number;
  /** Every JetStream API request of the minute by `<connection>: <kind> <stream>`, direct gets and pull requests included (api-traffic.ts). */
  apiByClient: Record<string, number>;
  /** Consumers created during the minute (durable and ephemeral), from apiByClient. */
  consumerCreates: number;
  /** Every message clients sent nats-server during the minute (`/varz` in_msgs delta): publishes, direct gets, pulls, acks, API calls. */
  inMsgs: number;
  inMsgsPerEvent: number;
  /** Consumers on EVENTS at the end of the minute, and the most seen in the minute's 5-second samples. */
  consumers: number;
  consumersMax: number;
  sse: SseWindow;
  reader: { pages: number; events: number; errors: number; p99Ms: number };
  logs: LogCounts;
}

/** Rounded to `digits` decimals; NaN (nothing to measure) stays NaN, which the JSON shows as null. */
function round(v: number, digits = 2): number {
  return Math.round(v * 10 ** digits) / 10 ** digits;
}

export function minuteRow(input: {
  minute: number;
  appends: AppendWindow;
  sse: SseWindow;
  reader: ReaderWindow;
  from: ServerSample;
  to: ServerSample;
  consumersMax: number;
  rssMb: Record<string, number | null>;
  natsHeap: GoMemStats | null;
  logs: LogCounts;
  apiByClient: Record<string, number>;
}): MinuteRow {
  const { appends, from, to } = input;
  const stored = to.eventsMessages - from.eventsMessages;
  const apiCalls = to.apiTotal - from.apiTotal;
  return {
    minute: input.minute,
    appends: {
      ok: appends.ok,
      errors: appends.errors,
      agentInputs: appends.agentInputs,
      p50Ms: round(percentile(appends.latenciesMs, 50)),
      p99Ms: round(percentile(appends.latenciesMs, 99)),
      maxMs: round(appends.latenciesMs.reduce((m, v) => Math.max(m, v), 0)),
      maxLagMs: round(appends.maxLagMs, 1),
    },
    rssMb: input.rssMb,
    natsHeap: input.natsHeap,
    apiCalls,
    apiErrors: to.apiErrors - from.apiErrors,
    storedEvents: stored,
    apiPerEvent: round(apiCalls / Math.max(1, stored), 3),
    apiByClient: input.apiByClient,
    consumerCreates: Object.entries(input.apiByClient).filter(([key]) => createsConsumer(key.slice(key.lastIndexOf(": ") + 2))).reduce((s, [, n]) => s + n, 0),
    inMsgs: to.inMsgs - from.inMsgs,
    inMsgsPerEvent: round((to.inMsgs - from.inMsgs) / Math.max(1, stored)),
    consumers: to.eventsConsumers,
    consumersMax: Math.max(input.consumersMax, to.eventsConsumers),
    sse: input.sse,
    reader: { pages: input.reader.pages, events: input.reader.events, errors: input.reader.errors, p99Ms: round(percentile(input.reader.latenciesMs, 99)) },
    logs: input.logs,
  };
}

/** Short names for the one-line rows. */
const SHORT: Record<string, string> = { "nats-server": "nats", gateway: "gw", breaker: "brk", scheduler: "sch", "webhook-pusher": "whp", llm: "llm" };

export function formatRow(row: MinuteRow): string {
  const rss = Object.entries(row.rssMb).map(([name, mb]) => `${SHORT[name] ?? name} ${mb === null ? "-" : mb.toFixed(0)}`).join(" ");
  const { appends: a, sse } = row;
  return [
    `min ${String(row.minute).padStart(2)}`,
    `appends ${a.ok} ok ${a.errors} err, p50 ${a.p50Ms} p99 ${a.p99Ms} max ${a.maxMs} ms${a.maxLagMs > 50 ? ` (sender ${a.maxLagMs} ms late)` : ""}`,
    `RSS MB ${rss}${row.natsHeap === null ? "" : ` (nats Go heap ${row.natsHeap.heapInUseMb.toFixed(0)} in use, GC goal ${row.natsHeap.gcGoalMb.toFixed(0)})`}`,
    `API ${row.apiCalls}${row.apiErrors > 0 ? ` (${row.apiErrors} err)` : ""} / ${row.storedEvents} stored = ${row.apiPerEvent}/event (all msgs ${row.inMsgsPerEvent}/event)`,
    `consumers ${row.consumers} (max ${row.consumersMax}, ${row.consumerCreates} created)`,
    `SSE ${sse.frames} frames ${sse.gaps} gaps ${sse.duplicates} dups ${sse.reconnects}+${sse.unplannedEnds} reconnects${sse.errors > 0 ? ` ${sse.errors} err` : ""}`,
    `reader ${row.reader.pages} pages ${row.reader.errors} err`,
    `log errors ${sumCounts(row.logs.errors)} warnings ${sumCounts(row.logs.warnings)}`,
  ].join(" | ");
}

/** Least-squares slope of y over x; NaN with fewer than two points. */
export function slope(points: readonly { x: number; y: number }[]): number {
  if (points.length < 2) return Number.NaN;
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return sxx === 0 ? Number.NaN : sxy / sxx;
}

export { round };
