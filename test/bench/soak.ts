/**
 * `npm run soak -- --minutes 10`: the mesh under a steady mixed load for a
 * while, to see what stays flat and what grows (issue #20). It starts its own
 * nats-server (monitoring on) and the gateway and the four processors as
 * separate processes, as `npm start` does, then for `--minutes`:
 *   - `--rate` appends/s over `--streams` streams, open loop, one in ten an
 *     `agent/input-added` the llm processor answers (echo provider), each with
 *     an idempotency key;
 *   - `--sse-clients` SSE clients on random streams, each reconnecting every
 *     10-20 s with Last-Event-ID and checking it sees no gap and no duplicate;
 *   - one paged reader (`--paged-readers`) walking random streams with `?after=&limit=`.
 * Every minute it prints one line: appends and their latency, the RSS of every
 * process, JetStream API calls per stored event (nats-server's `/jsz`),
 * consumers on EVENTS, SSE continuity, reader pages, errors in the logs; at the
 * end the RSS slope, API calls per event in steady state, and a check of every
 * SSE client's stream against a paged read of it.
 *
 * `--burst <n>` runs the burst instead: n new agents with one input each, as
 * fast as the gateway takes them, then a wait until all are answered (or
 * `--burst-timeout` seconds), then processor timeouts from the logs and the
 * ephemeral consumers left on EVENTS. `--json <file>` writes the results.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Pool } from "undici";
import { load1, machineInfo, type MachineInfo } from "./report.js";
import { addCounts, ApiTraffic } from "./soak/api-traffic.js";
import { PacedAppender, soakStreams } from "./soak/appender.js";
import { runBurst, type BurstResult } from "./soak/burst.js";
import { LogTally, sumCounts, type LogCounts, type LogGroup } from "./soak/logs.js";
import { startSoakMesh, type GoMemStats, type SoakMesh } from "./soak/mesh.js";
import { rssMb, type ConsumerDetail } from "./soak/monitor.js";
import { PagedReader, readAllEvents, type PageEvent, type ReaderWindow } from "./soak/reader.js";
import { formatRow, minuteRow, round, slope, type MinuteRow } from "./soak/report.js";
import { SseClients, type SseWindow } from "./soak/sse-clients.js";
import { print, progress } from "./support/log.js";
import { UndoStack } from "./support/undo-stack.js";

const USAGE = `npm run soak -- [--minutes 10] [--rate 200] [--streams 200] [--sse-clients 50] [--json file]
npm run soak -- --burst <agents> [--burst-timeout 900] [--json file]
Other options: --log-level warn (the services' LOG_LEVEL), --burst-connections 32, --paged-readers 1,
--nats-heap-profile <file> (nats-server's heap profile at the end of the last minute, and of minute 2 beside it as
<file>.min2, for \`go tool pprof -top -sample_index=inuse_space -diff_base <file>.min2 <file>\`; also its Go heap every minute).`;

/** Targets of issue #20. */
const TARGET_API_PER_EVENT = 0.2;
const TARGET_RSS_SLOPE_MB_PER_MIN = 10;

interface Options {
  minutes: number;
  rate: number;
  streams: number;
  sseClients: number;
  pagedReaders: number;
  burst: number | null;
  burstTimeoutS: number;
  burstConnections: number;
  json: string | null;
  logLevel: string;
  natsHeapProfile: string | null;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      minutes: { type: "string", default: "10" },
      rate: { type: "string", default: "200" },
      streams: { type: "string", default: "200" },
      "sse-clients": { type: "string", default: "50" },
      "paged-readers": { type: "string", default: "1" },
      burst: { type: "string" },
      "burst-timeout": { type: "string", default: "900" },
      "burst-connections": { type: "string", default: "32" },
      json: { type: "string" },
      "log-level": { type: "string", default: "warn" },
      "nats-heap-profile": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    print(USAGE);
    process.exit(0);
  }
  const number = (name: string, text: string, min: number): number => {
    const value = Number(text);
    if (!Number.isFinite(value) || value < min) throw new Error(`--${name} must be a number >= ${min} (got ${text})\n${USAGE}`);
    return value;
  };
  return {
    minutes: number("minutes", values.minutes, 1),
    rate: number("rate", values.rate, 1),
    streams: number("streams", values.streams, 2),
    sseClients: number("sse-clients", values["sse-clients"], 0),
    pagedReaders: number("paged-readers", values["paged-readers"], 0),
    burst: values.burst === undefined ? null : number("burst", values.burst, 1),
    burstTimeoutS: number("burst-timeout", values["burst-timeout"], 1),
    burstConnections: number("burst-connections", values["burst-connections"], 1),
    json: values.json ?? null,
    logLevel: values["log-level"],
    natsHeapProfile: values["nats-heap-profile"] ?? null,
  };
}

interface ContinuityCheck {
  clients: number;
  /** Clients whose received offsets equal their stream's offsets (as read back at the end) exactly. */
  exact: number;
  /** Offsets in the log that a client never received, summed over clients (with up to 5 examples). */
  missing: number;
  /** Offsets a client received that the log does not hold. */
  extra: number;
  duplicates: number;
  /** Clients that had not reached their stream's last offset when the check gave up waiting. */
  behind: number;
  examples: string[];
}

interface LogCheck {
  /** Appends acknowledged (2xx) whose offset is not in their stream when read back. */
  ackedNotStored: number;
  /** Soak events in the log (by type) beyond what was acknowledged: stored although the answer was an error. */
  storedNotAcked: number;
  agentInputs: number;
  requestsStarted: number;
  requestsSettled: number;
  errorEvents: number;
  /** Agent streams whose last input has no settled request after it. */
  unansweredAgents: number;
}

interface SoakResult {
  rows: MinuteRow[];
  rssSamples: { second: number; rssMb: Record<string, number | null>; natsHeap?: GoMemStats }[];
  summary: {
    minutes: number;
    appendsOk: number;
    appendsErrors: number;
    appendErrorSamples: string[];
    statusCounts: Record<string, number>;
    /** MB per minute after the first minute, least squares over the 5-second samples. */
    rssSlopeMbPerMin: Record<string, number | null>;
    natsRssSlopeMbPerMin: number | null;
    /** With --nats-heap-profile: slopes after minute 1 of nats-server's Go heap in use and of its GC goal, MB/min. */
    natsHeapSlopeMbPerMin: { inUse: number | null; gcGoal: number | null } | null;
    /** Minutes 2..N: API calls over stored events. */
    steadyApiPerEvent: number;
    steadyInMsgsPerEvent: number;
    /** Minutes 2..N: every JetStream API request by connection and kind, and per stored event. */
    apiByClientPerEvent: Record<string, { count: number; perEvent: number }>;
    apiCalls: number;
    storedEvents: number;
    sse: SseWindow;
    sseErrorSamples: string[];
    reader: { pages: number; errors: number; errorSamples: string[] };
    logs: LogCounts;
  };
  continuity: ContinuityCheck;
  log: LogCheck;
  consumersAtEnd: ConsumerDetail[];
  /** Distinct streams the SSE clients tail. */
  sseStreams: number;
}

const cleanups = new UndoStack();
let failure: string | null = null;

async function waitQuiet(mesh: SoakMesh, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let stable = 0;
  let last = -1;
  while (performance.now() < deadline) {
    const [sample, consumers] = await Promise.all([mesh.monitor.sample(), mesh.monitor.consumers()]);
    const busy = consumers.some((c) => c.durable && c.name.startsWith("processor-") && (c.numPending > 0 || c.numAckPending > 0));
    stable = !busy && sample.eventsMessages === last ? stable + 1 : 0;
    if (stable >= 3) return;
    last = sample.eventsMessages;
    await sleep(1000);
  }
  progress(`the processors were still busy after ${timeoutMs / 1000} s; checking anyway`);
}

function rssOfAll(pids: ReadonlyMap<string, number>): Record<string, number | null> {
  return Object.fromEntries([...pids].map(([name, pid]) => [name, rssMb(pid)]));
}

async function runSoak(mesh: SoakMesh, logs: LogTally, traffic: ApiTraffic, options: Options): Promise<SoakResult> {
  const pool = new Pool(mesh.gatewayUrl, { connections: 64 });
  const readPool = new Pool(mesh.gatewayUrl, { connections: 4 });
  cleanups.push(async () => { await Promise.all([pool.destroy(), readPool.destroy()]); });
  const streams = soakStreams(options.streams);
  const appender = new PacedAppender(pool, streams, options.rate);
  const sse = new SseClients(mesh.gatewayUrl, streams.all, options.sseClients);
  cleanups.push(() => { sse.stop(); return Promise.resolve(); });
  const readers = Array.from({ length: options.pagedReaders }, () => new PagedReader(readPool, streams.all));
  const readerWindow = (): ReaderWindow => {
    const windows = readers.map((r) => r.takeWindow());
    return { pages: windows.reduce((s, w) => s + w.pages, 0), events: windows.reduce((s, w) => s + w.events, 0), errors: windows.reduce((s, w) => s + w.errors, 0), latenciesMs: windows.flatMap((w) => w.latenciesMs) };
  };
  progress(`soak: ${options.minutes} min, ${options.rate} appends/s over ${streams.all.length} streams (${streams.agents.length} agent streams get every tenth append, an agent input), ${options.sseClients} SSE clients, ${options.pagedReaders} paged reader(s)`);

  const first = await mesh.monitor.sample();
  let previous = first;
  const rows: MinuteRow[] = [];
  const rssSamples: SoakResult["rssSamples"] = [];
  const t0 = performance.now();
  const elapsed = (): number => (performance.now() - t0) / 1000;
  logs.takeWindow();
  await traffic.takeWindow();
  appender.start();
  sse.start();
  for (const reader of readers) reader.start();
  for (let minute = 1; minute <= options.minutes; minute++) {
    let consumersMax = 0;
    for (;;) {
      if (failure !== null) throw new Error(failure);
      const left = t0 + minute * 60_000 - performance.now();
      if (left <= 0) break;
      await sleep(Math.min(5000, left));
      const rssMb = rssOfAll(mesh.pids);
      const natsHeap = await mesh.natsMemStats();
      rssSamples.push({ second: round(elapsed(), 1), rssMb, ...(natsHeap === null ? {} : { natsHeap }) });
      const sample = await mesh.monitor.sample().catch(() => null);
      if (sample !== null) consumersMax = Math.max(consumersMax, sample.eventsConsumers);
    }
    const sample = await mesh.monitor.sample();
    const row = minuteRow({ minute, appends: appender.takeWindow(), sse: sse.takeWindow(appender.acked), reader: readerWindow(), from: previous, to: sample, consumersMax, rssMb: rssOfAll(mesh.pids), natsHeap: await mesh.natsMemStats(), logs: logs.takeWindow(), apiByClient: await traffic.takeWindow() });
    rows.push(row);
    print(formatRow(row));
    previous = sample;
    // Heap profiles while the load runs: minute 2 as the base, the last minute to compare with it. Not after the
    // load: the read-back of every stream below loads every block of the store, which is not the steady state.
    if (options.natsHeapProfile !== null && (minute === options.minutes || (minute === 2 && options.minutes > 2))) {
      const file = resolve(minute === options.minutes ? options.natsHeapProfile : `${options.natsHeapProfile}.min2`);
      mkdirSync(dirname(file), { recursive: true });
      await mesh.saveNatsHeapProfile(file);
      progress(`nats-server heap profile of minute ${minute} written to ${file}`);
    }
  }

  progress("load stopped; waiting for the processors to finish, then checking every stream");
  await appender.stop();
  await Promise.all(readers.map((reader) => reader.stop()));
  // Appends answered after the last minute closed.
  const lateAppends = appender.takeWindow();
  await waitQuiet(mesh, 60_000);
  const last = await mesh.monitor.sample();
  const consumersAtEnd = await mesh.monitor.consumers();

  // Read every stream back.
  const logEvents = new Map<string, PageEvent[]>();
  for (const path of streams.all) logEvents.set(path, await readAllEvents(readPool, path));
  const log = checkLog(streams.agents, logEvents, appender);

  // Let every SSE client reach its stream's end, then compare what it received with the log.
  const lastOffset = (path: string): number => logEvents.get(path)?.at(-1)?.offset ?? 0;
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline && sse.clients.some((c) => c.lastSeen < lastOffset(c.path))) await sleep(250);
  sse.stop();
  sse.takeWindow(appender.acked);
  const continuity = checkContinuity(sse, logEvents);

  const sseTotals = sse.totals();
  const steady = rows.length > 1 ? rows.slice(1) : rows;
  const steadyStored = steady.reduce((s, r) => s + r.storedEvents, 0);
  const steadyInMsgs = steady.reduce((s, r) => s + r.inMsgs, 0);
  const steadyApiByClient: Record<string, number> = {};
  for (const row of steady) addCounts(steadyApiByClient, row.apiByClient);
  const apiByClientPerEvent = Object.fromEntries(
    Object.entries(steadyApiByClient)
      .sort(([, a], [, b]) => b - a)
      .map(([key, count]) => [key, { count, perEvent: round(count / Math.max(1, steadyStored), 4) }]),
  );
  const rssSlopeMbPerMin: Record<string, number | null> = {};
  for (const name of mesh.pids.keys()) {
    const points = rssSamples.filter((s) => s.second >= 60).flatMap((s) => {
      const mb = s.rssMb[name];
      return mb === null || mb === undefined ? [] : [{ x: s.second / 60, y: mb }];
    });
    // null (in the JSON) when the run was too short to have samples after the first minute.
    const mbPerMin = slope(points);
    rssSlopeMbPerMin[name] = Number.isFinite(mbPerMin) ? round(mbPerMin) : null;
  }
  const natsHeapSlope = (pick: (m: GoMemStats) => number): number | null => {
    const mbPerMin = slope(rssSamples.filter((s) => s.second >= 60 && s.natsHeap !== undefined).map((s) => ({ x: s.second / 60, y: pick(s.natsHeap as GoMemStats) })));
    return Number.isFinite(mbPerMin) ? round(mbPerMin) : null;
  };
  return {
    rows,
    rssSamples,
    summary: {
      minutes: options.minutes,
      appendsOk: rows.reduce((s, r) => s + r.appends.ok, lateAppends.ok),
      appendsErrors: rows.reduce((s, r) => s + r.appends.errors, lateAppends.errors),
      appendErrorSamples: appender.errorSamples,
      statusCounts: appender.statusCounts,
      rssSlopeMbPerMin,
      natsRssSlopeMbPerMin: rssSlopeMbPerMin["nats-server"] ?? null,
      natsHeapSlopeMbPerMin: options.natsHeapProfile === null ? null : { inUse: natsHeapSlope((m) => m.heapInUseMb), gcGoal: natsHeapSlope((m) => m.gcGoalMb) },
      steadyApiPerEvent: round(steady.reduce((s, r) => s + r.apiCalls, 0) / Math.max(1, steadyStored), 3),
      steadyInMsgsPerEvent: round(steadyInMsgs / Math.max(1, steadyStored)),
      apiByClientPerEvent,
      apiCalls: last.apiTotal - first.apiTotal,
      storedEvents: last.eventsMessages - first.eventsMessages,
      sse: sseTotals,
      sseErrorSamples: sse.clients.flatMap((c) => c.errorSamples).slice(0, 10),
      reader: { pages: rows.reduce((s, r) => s + r.reader.pages, 0), errors: rows.reduce((s, r) => s + r.reader.errors, 0), errorSamples: readers.flatMap((reader) => reader.errorSamples) },
      logs: logs.totals(),
    },
    continuity,
    log,
    consumersAtEnd,
    sseStreams: new Set(sse.clients.map((c) => c.path)).size,
  };
}

function checkLog(agentStreams: readonly string[], logEvents: ReadonlyMap<string, PageEvent[]>, appender: PacedAppender): LogCheck {
  let ackedNotStored = 0;
  let storedSoak = 0;
  let ackedTotal = 0;
  for (const [path, acked] of appender.acked) {
    const offsets = new Set((logEvents.get(path) ?? []).map((e) => e.offset));
    ackedTotal += acked.length;
    for (const offset of acked) if (!offsets.has(offset)) ackedNotStored += 1;
  }
  const all = [...logEvents.values()].flat();
  const agents = new Set(agentStreams);
  for (const [path, events] of logEvents) {
    storedSoak += events.filter((e) => e.type === "soak/tick" || (agents.has(path) && e.type === "agent/input-added")).length;
  }
  let unansweredAgents = 0;
  for (const path of agentStreams) {
    const events = logEvents.get(path) ?? [];
    const lastInput = events.findLast((e) => e.type === "agent/input-added");
    if (lastInput !== undefined && !events.some((e) => e.type === "agent/llm-request-settled" && e.offset > lastInput.offset)) unansweredAgents += 1;
  }
  return {
    ackedNotStored,
    storedNotAcked: Math.max(0, storedSoak - ackedTotal),
    agentInputs: all.filter((e) => e.type === "agent/input-added").length,
    requestsStarted: all.filter((e) => e.type === "agent/llm-request-started").length,
    requestsSettled: all.filter((e) => e.type === "agent/llm-request-settled").length,
    errorEvents: all.filter((e) => e.type === "stream/error-occurred").length,
    unansweredAgents,
  };
}

function checkContinuity(sse: SseClients, logEvents: ReadonlyMap<string, PageEvent[]>): ContinuityCheck {
  const check: ContinuityCheck = { clients: sse.clients.length, exact: 0, missing: 0, extra: 0, duplicates: 0, behind: 0, examples: [] };
  for (const client of sse.clients) {
    const offsets = (logEvents.get(client.path) ?? []).map((e) => e.offset);
    const inLog = new Set(offsets);
    const seen = new Set(client.seen);
    const missing = offsets.filter((o) => !seen.has(o));
    const extra = client.seen.filter((o) => !inLog.has(o));
    check.missing += missing.length;
    check.extra += extra.length;
    check.duplicates += client.duplicateOffsets.length;
    if (client.lastSeen < (offsets.at(-1) ?? 0)) check.behind += 1;
    const exact = missing.length === 0 && extra.length === 0 && client.duplicateOffsets.length === 0 && client.seen.length === offsets.length && client.seen.every((o, i) => o === offsets[i]);
    if (exact) check.exact += 1;
    else if (check.examples.length < 5) {
      check.examples.push(`client ${client.id} on ${client.path}: ${client.seen.length} received, ${offsets.length} in the log, missing [${missing.slice(0, 5).join(", ")}], extra [${extra.slice(0, 5).join(", ")}], duplicates [${client.duplicateOffsets.slice(0, 5).join(", ")}], last received ${client.lastSeen}`);
    }
  }
  return check;
}

function printSoakSummary(result: SoakResult): void {
  const { summary: s, continuity: c, log } = result;
  const met = (ok: boolean): string => (ok ? "met" : "NOT met");
  const steadyLabel = s.minutes > 1 ? `minutes 2..${s.minutes}` : "minute 1 (a one-minute run has no steady state)";
  print("");
  print("Summary");
  print(`  appends: ${s.appendsOk} ok, ${s.appendsErrors} errors; statuses ${JSON.stringify(s.statusCounts)}`);
  for (const sample of s.appendErrorSamples.slice(0, 5)) print(`    e.g. ${sample}`);
  const natsSlope = s.natsRssSlopeMbPerMin;
  print(`  nats-server RSS slope after minute 1: ${natsSlope === null ? "n/a (a run of one minute)" : `${natsSlope} MB/min (target <= ${TARGET_RSS_SLOPE_MB_PER_MIN}: ${met(natsSlope <= TARGET_RSS_SLOPE_MB_PER_MIN)})`}`);
  if (s.natsHeapSlopeMbPerMin !== null) print(`  nats-server Go heap slopes after minute 1, MB/min: in use ${s.natsHeapSlopeMbPerMin.inUse ?? "n/a"} (garbage not yet collected included), GC goal ${s.natsHeapSlopeMbPerMin.gcGoal ?? "n/a"} (the heap grows to it between collections, and the RSS with it; with GOGC=100 it is twice what the last collection left live)`);
  print(`  RSS slopes after minute 1, MB/min: ${Object.entries(s.rssSlopeMbPerMin).map(([name, v]) => `${name} ${v === null ? "n/a" : v}`).join(", ")}`);
  print(`  JetStream API calls per stored event, ${steadyLabel}: ${s.steadyApiPerEvent} (target <= ${TARGET_API_PER_EVENT}: ${met(s.steadyApiPerEvent <= TARGET_API_PER_EVENT)}); all client messages to nats-server per stored event: ${s.steadyInMsgsPerEvent}`);
  print(`  totals: ${s.apiCalls} API calls, ${s.storedEvents} events stored`);
  print(`  JetStream API requests by connection and kind, ${steadyLabel}, per stored event (direct gets and pulls are not in /jsz's count):`);
  for (const [key, { count, perEvent }] of Object.entries(s.apiByClientPerEvent).slice(0, 20)) print(`    ${perEvent.toFixed(4).padStart(8)} ${String(count).padStart(8)}  ${key}`);
  print(`  SSE: ${s.sse.frames} frames, ${s.sse.gaps} gaps, ${s.sse.duplicates} duplicates, ${s.sse.reconnects} planned reconnects, ${s.sse.unplannedEnds} ended by the server, ${s.sse.errors} connection errors`);
  print(`  SSE vs the log read back: ${c.exact}/${c.clients} clients exact; ${c.missing} missing, ${c.extra} extra, ${c.duplicates} duplicate offsets; ${c.behind} clients behind at the end`);
  for (const example of c.examples) print(`    ${example}`);
  print(`  log read back: ${log.ackedNotStored} acknowledged appends missing, ${log.storedNotAcked} stored without an acknowledgement; ${log.agentInputs} agent inputs, ${log.requestsStarted} requests started, ${log.requestsSettled} settled, ${log.errorEvents} stream/error-occurred, ${log.unansweredAgents} agents with an unanswered last input`);
  print(`  paged reader: ${s.reader.pages} pages, ${s.reader.errors} errors`);
  for (const sample of s.reader.errorSamples.slice(0, 3)) print(`    e.g. ${sample}`);
  print(`  service logs: errors ${JSON.stringify(s.logs.errors)}, warnings ${JSON.stringify(s.logs.warnings)}, unparsed lines ${JSON.stringify(s.logs.unparsed)}`);
  const ephemeral = result.consumersAtEnd.filter((x) => !x.durable);
  print(`  consumers on EVENTS once quiet, SSE clients still connected: ${result.consumersAtEnd.length}, ${ephemeral.length} of them ephemeral (the live tails of the ${result.sseStreams} streams with SSE clients: one each)`);
}

function printLogGroups(groups: readonly LogGroup[], unparsed: readonly string[]): void {
  if (groups.length > 0) {
    print("  log lines at warning and above, by message:");
    for (const g of groups.slice(0, 15)) print(`    ${String(g.count).padStart(6)} ${g.service} ${g.level}: ${g.msg}${g.err === "" ? "" : ` (${g.err})`}`);
  }
  for (const line of unparsed.slice(0, 5)) print(`    unparsed: ${line}`);
}

function printBurstSummary(r: BurstResult): void {
  print("");
  print(`Burst of ${r.agents} new agents`);
  print(`  appends: ${r.appends.ok} stored in ${r.appends.seconds} s (${r.appends.perSecond}/s, p50 ${r.appends.latencyP50Ms} ms, p99 ${r.appends.latencyP99Ms} ms); ${r.appends.non2xx} non-2xx, ${r.appends.errors} errors, ${r.appends.timeouts} timeouts; statuses ${JSON.stringify(r.appends.statusCodes)}`);
  print(`  answered: ${r.answered}/${r.appends.ok}${r.timedOut ? " (timed out)" : ""}, ${r.answerSeconds} s after the last append; results ${JSON.stringify(r.settledByStatus)}; ${r.errorEvents} stream/error-occurred`);
  print(`  processor timeouts in the logs: ${JSON.stringify(r.logs.timeouts)} (target: none); errors ${JSON.stringify(r.logs.errors)}, warnings ${JSON.stringify(r.logs.warnings)}`);
  print(`  JetStream API: ${r.api.calls} calls (${r.api.errors} errors) for ${r.api.storedEvents} stored events = ${r.api.perEvent}/event; all client messages ${r.api.inMsgsPerEvent}/event`);
  print(`  consumers on EVENTS: at most ${r.consumers.maxOnEvents}; ephemeral once quiet ${r.consumers.ephemeralWhenQuiet}, ${r.consumers.graceS} s later ${r.consumers.orphaned} (orphans; target: none)`);
  for (const c of r.consumers.orphanSamples.slice(0, 5)) print(`    ${c.name} ${c.filter} created ${c.created}, inactive threshold ${c.inactiveThresholdNs === null ? "none" : `${c.inactiveThresholdNs / 1e9} s`}`);
  print(`  nats-server RSS: ${String(r.natsRssMb.before)} MB before, ${String(r.natsRssMb.peak)} MB peak, ${String(r.natsRssMb.after)} MB after`);
  print("  JetStream API requests by connection and kind, per stored event (direct gets and pulls are not in /jsz's count):");
  for (const [key, count] of Object.entries(r.apiByClient).sort(([, a], [, b]) => b - a).slice(0, 20)) print(`    ${(count / Math.max(1, r.api.storedEvents)).toFixed(4).padStart(8)} ${String(count).padStart(8)}  ${key}`);
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions();
  } catch (err) {
    // A bad argument: its message (with the usage) is enough, no stack.
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const startedAt = new Date();
  const machine: MachineInfo = machineInfo();
  const loadBefore = load1();
  progress(`${machine.nproc} CPUs (${machine.cpuModel}), node ${machine.node}, nats-server ${machine.natsServer}, code ${machine.git.commit}, load ${loadBefore}`);
  const logs = new LogTally();
  const mesh = await startSoakMesh({
    logs,
    logLevel: options.logLevel,
    onUnexpectedExit: (service, why) => { failure ??= `${service} exited unexpectedly (${why})`; progress(failure); },
    progress,
    profile: options.natsHeapProfile !== null,
  });
  cleanups.push(() => mesh.stop());
  const traffic = await ApiTraffic.start(mesh.natsUrl, mesh.monitorUrl);
  cleanups.push(() => traffic.close());

  let results: Record<string, unknown>;
  if (options.burst !== null) {
    const burst = await runBurst({ gatewayUrl: mesh.gatewayUrl, monitor: mesh.monitor, pids: mesh.pids, logs, traffic, agents: options.burst, connections: options.burstConnections, timeoutS: options.burstTimeoutS, graceS: 15, progress });
    printBurstSummary(burst);
    printLogGroups(burst.logs.top, logs.unparsedSamples());
    results = { burst };
  } else {
    const soak = await runSoak(mesh, logs, traffic, options);
    printSoakSummary(soak);
    printLogGroups(logs.topGroups(30), logs.unparsedSamples());
    results = { soak, logGroups: logs.topGroups(50), unparsed: logs.unparsedSamples() };
  }
  // The soak saved its profiles while its load ran; the burst's is taken once it is over.
  if (options.natsHeapProfile !== null && options.burst !== null) {
    const file = resolve(options.natsHeapProfile);
    mkdirSync(dirname(file), { recursive: true });
    await mesh.saveNatsHeapProfile(file);
    progress(`nats-server heap profile written to ${file} (go tool pprof -top -sample_index=inuse_space ${file})`);
  }
  const loadAfter = load1();
  print(`${machine.nproc} CPUs, ${machine.cpuModel}; node ${machine.node}; nats-server ${machine.natsServer}; code ${machine.git.commit}${machine.git.uncommitted.length > 0 ? ` + uncommitted ${machine.git.uncommitted.join(", ")}` : ""}; 1-min load ${loadBefore} before, ${loadAfter} after`);
  if (options.json !== null) {
    const file = resolve(options.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify({ startedAt: startedAt.toISOString(), machine, loadavg: { before: loadBefore, after: loadAfter }, options, ...results }, null, 2)}\n`);
    progress(`results written to ${file}`);
  }
  const errors = sumCounts(logs.totals().errors);
  if (errors > 0) progress(`${errors} error lines in the services' logs (above)`);
  if (failure !== null) throw new Error(failure);
}

main()
  .then(() => cleanups.run())
  .catch(async (err: unknown) => {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanups.run();
    process.exitCode = 1;
  })
  .finally(() => process.exit());
