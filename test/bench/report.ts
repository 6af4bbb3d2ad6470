import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { dirname } from "node:path";
import { findNatsServer } from "../../deploy/local/nats-server.js";
import type { AppendThroughput } from "./scenarios/appends.js";
import type { CatchupResult } from "./scenarios/catchup.js";
import type { FanoutResult } from "./scenarios/fanout.js";
import type { LatencyResult } from "./scenarios/latency.js";
import type { RateResult } from "./scenarios/raw.js";
import { REPO_ROOT } from "./support/gateway-process.js";
import type { PhaseWindow } from "./support/phases.js";

/** Everything one run measured, as written to .data/bench-results.json. */
export interface BenchResults {
  startedAt: string;
  durationSec: number;
  machine: MachineInfo;
  /** 1-minute load average before and after; well above nproc means the numbers were disturbed. */
  loadavg: { before: number; after: number };
  /** The faster of the two windowed publishers below: the denominator of the append ratios. */
  rawPublish?: RateResult;
  /** Windowed publish, acks matched on one subscription (shared/nats/jetstream-publisher.ts). */
  rawPublishAckTable?: RateResult;
  /** Windowed js.publish with `noAsyncTraces: true`. */
  rawPublishClient?: RateResult;
  /** js.publish with the client's default options (async stack traces on), for context. */
  rawPublishDefaultClient?: RateResult;
  single?: AppendThroughput;
  /** The single-append load against a bare Fastify server that stores nothing: what one Node HTTP process answers here. */
  httpCeiling?: AppendThroughput;
  batch?: AppendThroughput;
  latency?: LatencyResult;
  fanout?: FanoutResult;
  catchup?: CatchupResult;
  /** Monotonic-clock windows of each scenario, for `profile-summary.ts --phase`. */
  phases: Record<string, PhaseWindow>;
  checks: Check[];
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  node: string;
  natsServer: string;
  /** The code measured: HEAD plus any uncommitted changes to the gateway's sources. */
  git: { commit: string; uncommitted: string[] };
}

export interface Check {
  figure: string;
  gateway: string;
  raw: string;
  ratio: string;
  target: string;
  met: boolean | null;
}

export function machineInfo(): MachineInfo {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown";
  const bin = findNatsServer();
  const natsServer = bin === null ? "not found" : execFileSync(bin, ["--version"], { encoding: "utf8" }).trim().replace(/^nats-server:\s*/, "");
  return { nproc: availableParallelism(), cpuModel, node: process.version, natsServer, git: gitState() };
}

function gitState(): MachineInfo["git"] {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8", cwd: REPO_ROOT }).trim();
    const status = execFileSync("git", ["status", "--porcelain", "--", "gateway", "shared", "package-lock.json"], { encoding: "utf8", cwd: REPO_ROOT });
    return { commit, uncommitted: status.split("\n").filter((line) => line !== "").map((line) => line.slice(3)) };
  } catch {
    return { commit: "unknown", uncommitted: [] };
  }
}

export function load1(): number {
  return Math.round((loadavg()[0] ?? 0) * 100) / 100;
}

const n = (v: number): string => Math.round(v).toLocaleString("en-US");
const ms = (v: number): string => `${v.toFixed(2)} ms`;
const pct = (v: number): string => `${Math.round(v * 100)}%`;
const us = (v: number): string => `${v.toFixed(1)} µs`;

/** CPU time each process spent per request in a closed-loop HTTP scenario. */
export interface CpuPerRequest {
  /** The server under load: the gateway, or what stood in for it. */
  serverUs: number;
  natsUs: number;
  loadGeneratorUs: number;
}

/**
 * From a scenario's CPU shares and its request rate. The shares cover the untimed warm-up second too, which runs
 * at the same rate, so shares × cores ÷ rate is the CPU per request.
 */
export function cpuPerRequest(window: PhaseWindow | undefined, nproc: number, requestsPerSec: number): CpuPerRequest | undefined {
  const cpu = window?.cpu;
  if (cpu === undefined || requestsPerSec <= 0) return undefined;
  const perRequest = (sharePct: number): number => ((sharePct / 100) * nproc * 1e6) / requestsPerSec;
  return { serverUs: perRequest(cpu.gatewayPct), natsUs: perRequest(cpu.natsPct), loadGeneratorUs: perRequest(cpu.benchPct) };
}

/** The pass/fail view of a run: one row per target in the brief, plus context rows (target "-"). */
export function checks(r: Omit<BenchResults, "checks">): Check[] {
  const rows: Check[] = [];
  const raw = r.rawPublish;
  const vsPublish = (figure: string, a: AppendThroughput | undefined, target: number): void => {
    if (a === undefined) return;
    const ratio = raw === undefined ? Number.NaN : a.eventsPerSec / raw.perSec;
    rows.push({ figure, gateway: `${n(a.eventsPerSec)} ev/s`, raw: raw === undefined ? "-" : `${n(raw.perSec)} msg/s`, ratio: pct(ratio), target: `>= ${pct(target)} of raw`, met: ratio >= target });
  };
  const rawContext = (figure: string, d: RateResult | undefined): void => {
    if (raw !== undefined && d !== undefined) rows.push({ figure, gateway: "-", raw: `${n(d.perSec)} msg/s`, ratio: pct(d.perSec / raw.perSec), target: "-", met: null });
  };
  rawContext("raw publish, acks on one subscription", r.rawPublishAckTable);
  rawContext("raw publish, js.publish", r.rawPublishClient);
  rawContext("raw publish, js.publish, client defaults", r.rawPublishDefaultClient);
  vsPublish("a. single-event appends (32 conn)", r.single, 0.5);
  if (raw !== undefined && r.httpCeiling !== undefined) {
    const ceiling = r.httpCeiling;
    rows.push({ figure: "a. the same load, bare Fastify, nothing stored", gateway: `${n(ceiling.requestsPerSec)} req/s`, raw: `${n(raw.perSec)} msg/s`, ratio: pct(ceiling.requestsPerSec / raw.perSec), target: "-", met: null });
    if (r.single !== undefined) rows.push({ figure: "a. single-event appends / bare Fastify", gateway: `${n(r.single.eventsPerSec)} ev/s`, raw: `${n(ceiling.requestsPerSec)} req/s`, ratio: pct(r.single.eventsPerSec / ceiling.requestsPerSec), target: "-", met: null });
  }
  const singleCpu = r.single === undefined ? undefined : cpuPerRequest(r.phases.single, r.machine.nproc, r.single.requestsPerSec);
  if (raw !== undefined && singleCpu !== undefined) {
    rows.push({ figure: "a. CPU per append: gateway, nats-server, autocannon", gateway: `${us(singleCpu.serverUs)}, ${us(singleCpu.natsUs)}, ${us(singleCpu.loadGeneratorUs)}`, raw: "-", ratio: "-", target: "-", met: null });
    // What the machine could do if the gateway took no CPU at all: every core busy with nats-server and the load generator.
    const bound = (r.machine.nproc * 1e6) / (singleCpu.natsUs + singleCpu.loadGeneratorUs);
    rows.push({ figure: "a. bound if the gateway cost nothing", gateway: `${n(bound)} ev/s`, raw: `${n(raw.perSec)} msg/s`, ratio: pct(bound / raw.perSec), target: "-", met: null });
  }
  vsPublish("b. batch appends, 100/request (16 conn)", r.batch, 0.8);
  if (r.latency !== undefined) {
    const d = r.latency.delivery;
    rows.push({ figure: "c. append -> SSE latency p50", gateway: ms(d.p50), raw: "-", ratio: "-", target: "<= 1.5 ms", met: d.p50 <= 1.5 });
    rows.push({ figure: "c. append -> SSE latency p99", gateway: ms(d.p99), raw: "-", ratio: "-", target: "<= 5 ms", met: d.p99 <= 5 });
    rows.push({ figure: "c. append -> SSE latency max", gateway: ms(d.max), raw: "-", ratio: "-", target: "-", met: null });
  }
  if (r.fanout !== undefined) {
    const f = r.fanout;
    rows.push({ figure: `d. ${n(f.clients)} SSE clients: gateway RSS growth`, gateway: `${f.rssMb.growth} MB`, raw: "-", ratio: "-", target: "<= 50 MB", met: f.rssMb.growth <= 50 });
    rows.push({ figure: `d. ${f.events} events to every client, exactly once, in order`, gateway: f.exactlyOnceInOrder ? "yes" : "NO", raw: "-", ratio: "-", target: "yes", met: f.exactlyOnceInOrder });
    rows.push({ figure: `d. delivery time, last client`, gateway: `${n(f.deliveryMs.lastClient)} ms`, raw: "-", ratio: "-", target: "-", met: null });
  }
  if (r.catchup !== undefined) {
    const c = r.catchup;
    const vsRead = (figure: string, v: RateResult): void => {
      const ratio = v.perSec / c.raw.perSec;
      rows.push({ figure, gateway: `${n(v.perSec)} ev/s`, raw: `${n(c.raw.perSec)} msg/s`, ratio: pct(ratio), target: ">= 50% of raw", met: ratio >= 0.5 });
    };
    vsRead(`e. SSE catch-up of ${n(c.events)} events`, c.sse);
    vsRead(`e. paged JSON catch-up (limit=1000)`, c.paged);
  }
  return rows;
}

export function table(rows: readonly Check[]): string {
  const header: Check = { figure: "Figure", gateway: "Gateway", raw: "Raw JetStream", ratio: "Ratio", target: "Target", met: null };
  const cells = (c: Check, isHeader: boolean): string[] => [c.figure, c.gateway, c.raw, c.ratio, c.target, isHeader ? "Met" : c.met === null ? "" : c.met ? "yes" : "NO"];
  const all = [cells(header, true), ...rows.map((row) => cells(row, false))];
  const widths = all[0]?.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length))) ?? [];
  const line = (row: string[]): string => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(" | ").trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("-+-");
  return [line(all[0] ?? []), rule, ...all.slice(1).map(line)].join("\n");
}

/** One line per scenario: how long it ran and how busy the machine was, ours and others'. */
export function phaseLines(phases: BenchResults["phases"]): string {
  return Object.entries(phases)
    .map(([name, w]) => {
      const seconds = ((w.endUs - w.startUs) / 1e6).toFixed(1);
      const c = w.cpu;
      const cpu = c === undefined ? "" : `  busy ${c.busyPct}%: ${w.server ?? "gateway"} ${c.gatewayPct}%, nats-server ${c.natsPct}%, bench ${c.benchPct}%, other processes ${c.foreignPct}%`;
      return `  ${name.padEnd(18)} ${seconds.padStart(5)} s${cpu}`;
    })
    .join("\n");
}

export function writeResults(file: string, results: BenchResults): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
}
