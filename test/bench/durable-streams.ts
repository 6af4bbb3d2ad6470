import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import { load1, machineInfo, type MachineInfo } from "./report.js";
import { durableAppends, type DurableAppendsResult } from "./scenarios/durable-appends.js";
import { durableLatency, type DurableLatencyResult } from "./scenarios/durable-latency.js";
import { replaceSection } from "./support/docs-section.js";
import { REPO_ROOT, startGatewayProcess } from "./support/gateway-process.js";
import { print, progress } from "./support/log.js";
import { otherProcessesPct, snapshotProcesses } from "./support/other-processes.js";
import { Phases } from "./support/phases.js";
import { UndoStack } from "./support/undo-stack.js";
import { startReferenceServer } from "./support/reference-server.js";

/**
 * `npm run bench` part four: the Durable Streams protocol served by the
 * gateway (`/v1/stream/<path>`) beside `@durable-streams/server`, the
 * protocol's reference server, file-backed; both in one run on this machine,
 * each as its own process, driven by the same client code:
 *   - append -> live read latency (a waiting long-poll, one message at a time);
 *   - small-message append throughput (autocannon, keep-alive connections).
 * Prints a table, writes .data/bench-durable-streams.json and, when both
 * servers completed every scenario, replaces the section SECTION of
 * docs/benchmarks.md. A server that fails to start or to serve a scenario is
 * reported with the reason and the run exits non-zero.
 */

const SECTION = "Durable Streams protocol vs the reference server";
const DOC_FILE = join(REPO_ROOT, "docs", "benchmarks.md");
const RESULTS_FILE = join(REPO_ROOT, ".data", "bench-durable-streams.json");
const COMMAND = "npx tsx test/bench/durable-streams.ts";
/** Plain text: every Durable Streams server must take it, and it is the same bytes on both. */
const CONTENT_TYPE = "text/plain";
const MESSAGE_BYTES = 256;
const LATENCY = { samples: 1000, warmupSamples: 200, parkMs: 10 };
const APPENDS = { connections: 32, seconds: 10 };
/** CPU taken by other user-space processes during a scenario, in % of the machine, above which the run is flagged as disturbed. */
const DISTURBED_PCT = 5;

const SERVERS = ["agentmesh", "reference"] as const;
type ServerName = (typeof SERVERS)[number];
const SCENARIOS = ["latency", "appends"] as const;
type ScenarioName = (typeof SCENARIOS)[number];

interface Target {
  /** Where streams are created: `<origin>/v1/stream`, on both servers (the reference server takes any path). */
  streamsUrl: string;
  /** The server's processes (the gateway and its nats-server), for CPU accounting. */
  pids: number[];
  phases: Phases;
}

interface ServerResults {
  latency?: DurableLatencyResult;
  appends?: DurableAppendsResult;
  /** Why this server has no (or not all) figures. */
  failure?: string;
  /** CPU used by user-space processes outside this run during each scenario, in % of the machine. */
  otherProcessesPct: Partial<Record<ScenarioName, number>>;
}

interface DurableStreamsResults {
  startedAt: string;
  durationSec: number;
  machine: MachineInfo;
  referenceVersion: string;
  loadavg: { before: number; after: number };
  settings: { contentType: string; messageBytes: number; latency: typeof LATENCY; appends: typeof APPENDS };
  servers: Record<ServerName, ServerResults & { phases: Phases["windows"] }>;
}

const cleanups = new UndoStack();

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function referenceVersion(): string {
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, "node_modules", "@durable-streams", "server", "package.json"), "utf8")) as { version: string };
  return manifest.version;
}

async function startAgentmesh(): Promise<Target> {
  const nats = await startNatsServer();
  cleanups.push(() => nats.stop());
  const gateway = await startGatewayProcess({ natsUrl: nats.url, env: { AUTH: "off" }, onLog: (line) => { progress(`gateway: ${line}`); } });
  cleanups.push(() => gateway.stop());
  progress(`agentmesh: nats-server pid ${nats.pid} at ${nats.url}, gateway pid ${gateway.pid} at ${gateway.url}`);
  return { streamsUrl: `${gateway.url}/v1/stream`, pids: [gateway.pid, nats.pid], phases: new Phases({ gateway: gateway.pid, nats: nats.pid }) };
}

async function startReference(): Promise<Target> {
  const server = await startReferenceServer((line) => { progress(`reference: ${line}`); });
  cleanups.push(() => server.stop());
  progress(`reference: pid ${server.pid} at ${server.url}`);
  // No nats-server is involved; pid 0 reads as using no CPU.
  return { streamsUrl: `${server.url}/v1/stream`, pids: [server.pid], phases: new Phases({ gateway: server.pid, nats: 0 }) };
}

async function runScenario(name: ScenarioName, target: Target, results: ServerResults): Promise<void> {
  if (name === "latency") {
    results.latency = await target.phases.time(name, () => durableLatency({ streamUrl: `${target.streamsUrl}/bench/ds-latency`, contentType: CONTENT_TYPE, messageBytes: MESSAGE_BYTES, ...LATENCY }));
    progress(`  p50 ${results.latency.delivery.p50} ms, p99 ${results.latency.delivery.p99} ms (POST -> 204 p50 ${results.latency.appendRoundTrip.p50} ms)`);
  } else {
    results.appends = await target.phases.time(name, () => durableAppends({ streamUrl: `${target.streamsUrl}/bench/ds-appends`, contentType: CONTENT_TYPE, messageBytes: MESSAGE_BYTES, ...APPENDS }));
    progress(`  ${results.appends.appendsPerSec} appends/s`);
  }
}

const n = (v: number): string => Math.round(v).toLocaleString("en-US");
const ms = (v: number): string => `${v.toFixed(2)} ms`;
const times = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}×` : "-");

function table(servers: Record<ServerName, ServerResults>): string {
  const a = servers.agentmesh;
  const r = servers.reference;
  const row = (figure: string, pick: (s: ServerResults) => number | undefined, format: (v: number) => string): string => {
    const am = pick(a);
    const ref = pick(r);
    const cell = (v: number | undefined, s: ServerResults): string => (v !== undefined ? format(v) : s.failure !== undefined ? "failed" : "-");
    return `| ${figure} | ${cell(am, a)} | ${cell(ref, r)} | ${am !== undefined && ref !== undefined ? times(am / ref) : "-"} |`;
  };
  const conn = APPENDS.connections;
  return [
    "| figure | agentmesh gateway | reference server | agentmesh ÷ reference |",
    "|---|---|---|---|",
    row("append → long-poll read, p50 (lower is better)", (s) => s.latency?.delivery.p50, ms),
    row("append → long-poll read, p99", (s) => s.latency?.delivery.p99, ms),
    row(`appends/s, ${MESSAGE_BYTES}-byte messages, ${conn} connections (higher is better)`, (s) => s.appends?.appendsPerSec, n),
    row("context: one POST → 204 at a time, p50", (s) => s.latency?.appendRoundTrip.p50, ms),
    row(`context: POST → 204 under ${conn} connections, p50`, (s) => s.appends?.latencyMs.p50, (v) => `${v} ms`),
    row(`context: POST → 204 under ${conn} connections, p99`, (s) => s.appends?.latencyMs.p99, (v) => `${v} ms`),
  ].join("\n");
}

/** One line per server and completed scenario: how long it ran and who used the CPU. */
function cpuLines(servers: DurableStreamsResults["servers"]): string {
  const lines: string[] = [];
  for (const name of SERVERS) {
    for (const scenario of SCENARIOS) {
      const window = servers[name].phases[scenario];
      const c = window?.cpu;
      if (window === undefined || c === undefined || servers[name][scenario] === undefined) continue;
      const nats = name === "agentmesh" ? `, nats-server ${c.natsPct}%` : "";
      const seconds = ((window.endUs - window.startUs) / 1e6).toFixed(1).padStart(5);
      lines.push(`  ${`${name} ${scenario}`.padEnd(20)} ${seconds} s  busy ${c.busyPct}%: server ${c.gatewayPct}%${nats}, bench ${c.benchPct}%, kernel and others ${c.foreignPct}% (of which other user processes ${servers[name].otherProcessesPct[scenario] ?? 0}%)`);
    }
  }
  return lines.join("\n");
}

/** Scenarios during which user-space processes outside this run took more than DISTURBED_PCT of the machine. */
function disturbances(servers: Record<ServerName, ServerResults>): string[] {
  return SERVERS.flatMap((name) =>
    SCENARIOS.filter((scenario) => (servers[name].otherProcessesPct[scenario] ?? 0) > DISTURBED_PCT).map((scenario) => `${name} ${scenario} (${servers[name].otherProcessesPct[scenario] ?? 0}% of the machine)`),
  );
}

function docSection(results: DurableStreamsResults, tableText: string, disturbed: string[]): string {
  const m = results.machine;
  const code = `${m.git.commit}${m.git.uncommitted.length > 0 ? " with uncommitted changes" : ""}`;
  return `Written by \`test/bench/durable-streams.ts\` (the fourth part of \`npm run bench\`; alone: \`${COMMAND}\`), which
replaces this section after every complete run.

The same client code drives two servers over the [Durable Streams](https://github.com/durable-streams/durable-streams)
HTTP protocol, one after the other in one run: the gateway's \`/v1/stream/<path>\` (\`AUTH=off\`, its own
\`nats-server\` with file storage in a temporary folder) and \`@durable-streams/server\` ${results.referenceVersion}, the
protocol's reference Node server, file-backed in a temporary folder. Each server is its own process; the load
generator runs beside them. Streams are \`${CONTENT_TYPE}\`, messages ${MESSAGE_BYTES} bytes.

| figure | how |
|---|---|
| append → read latency | a reader holds a live long-poll (\`GET ?offset=<tail>&live=long-poll\`), a writer POSTs one message ${LATENCY.parkMs} ms later (so the poll is parked); time from just before the POST to the poll's last byte; ${n(LATENCY.samples)} samples after ${n(LATENCY.warmupSamples)} untimed. Long-poll, not SSE: every server has it, and one answer is one message |
| append throughput | autocannon, ${APPENDS.connections} keep-alive connections, ${APPENDS.seconds} s after 1 s untimed, each POSTing the next ${MESSAGE_BYTES}-byte body to one stream as soon as the last is answered; only 2xx count, any other answer fails the run |

Results (one run, ${results.startedAt.slice(0, 10)}, code ${code}; ${m.nproc} cores (${m.cpuModel}), Node ${m.node}, nats-server ${m.natsServer}):

${tableText}
${disturbed.length > 0 ? `\n**Disturbed run**: other processes used CPU during ${disturbed.join(", ")}.\n` : ""}
The two do not promise the same durability: the reference server \`fdatasync\`s each append before answering
(concurrent appends share one sync), while nats-server's file store hands each message to the operating system at
once and syncs to disk periodically (every 2 minutes by default), as it does for every agentmesh event.

Where the gateway's throughput comes from: appends to one stream are serialised (each is checked against the
stream's record, stored, and committed to the record), and the plain appends that arrive while one batch is being
stored go together as the next one, one JetStream message and one record commit
(\`gateway/durable/append-batch.ts\`). One POST at a time (the context row) an append costs a KV read, a JetStream
publish and a KV compare-and-set; a live reader then needs a KV read and a direct get.`;
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const machine = machineInfo();
  const loadBefore = load1();
  progress(`${machine.nproc} CPUs (${machine.cpuModel}), node ${machine.node}, nats-server ${machine.natsServer}, load ${loadBefore}`);
  if (loadBefore > machine.nproc * 0.5) progress(`warning: load average ${loadBefore} before starting; numbers may be disturbed`);

  const servers: Record<ServerName, ServerResults> = { agentmesh: { otherProcessesPct: {} }, reference: { otherProcessesPct: {} } };
  const targets: Partial<Record<ServerName, Target>> = {};
  const starts: Record<ServerName, () => Promise<Target>> = { agentmesh: startAgentmesh, reference: startReference };
  for (const name of SERVERS) {
    try {
      targets[name] = await starts[name]();
    } catch (err) {
      servers[name].failure = `start: ${message(err)}`;
      progress(`${name} did not start: ${message(err)}`);
    }
  }

  // Every server started is part of this run, idle or not.
  const ours = [process.pid, ...SERVERS.flatMap((name) => targets[name]?.pids ?? [])];
  // Scenario by scenario, so both servers are measured under the same machine conditions.
  for (const scenario of SCENARIOS) {
    for (const name of SERVERS) {
      const target = targets[name];
      if (target === undefined || servers[name].failure !== undefined) continue;
      progress(`${scenario}: ${name}`);
      try {
        const before = snapshotProcesses();
        await runScenario(scenario, target, servers[name]);
        servers[name].otherProcessesPct[scenario] = otherProcessesPct(before, snapshotProcesses(), ours);
      } catch (err) {
        servers[name].failure = `${scenario}: ${message(err)}`;
        progress(`${name} failed ${scenario}: ${message(err)}`);
      }
    }
  }

  const phasesOf = (name: ServerName): Phases["windows"] => targets[name]?.phases.windows ?? {};
  const results: DurableStreamsResults = {
    startedAt: startedAt.toISOString(),
    durationSec: Math.round((Date.now() - startedAt.getTime()) / 1000),
    machine,
    referenceVersion: referenceVersion(),
    loadavg: { before: loadBefore, after: load1() },
    settings: { contentType: CONTENT_TYPE, messageBytes: MESSAGE_BYTES, latency: LATENCY, appends: APPENDS },
    servers: { agentmesh: { ...servers.agentmesh, phases: phasesOf("agentmesh") }, reference: { ...servers.reference, phases: phasesOf("reference") } },
  };
  const tableText = table(servers);
  const disturbed = disturbances(servers);

  print("");
  print(tableText);
  print("");
  print(`${results.durationSec} s; 1-min load average ${results.loadavg.before} before, ${results.loadavg.after} after; @durable-streams/server ${results.referenceVersion}`);
  print(`Scenarios (CPU shares are of all ${machine.nproc} cores):\n${cpuLines(results.servers)}`);
  if (disturbed.length > 0) print(`WARNING: other processes used CPU during ${disturbed.join(", ")}; rerun on a quiet machine before trusting these numbers`);

  mkdirSync(dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
  print(`Full results: ${RESULTS_FILE}`);

  const failed = SERVERS.filter((name) => servers[name].failure !== undefined);
  if (failed.length > 0) {
    for (const name of failed) print(`FAILED: ${name}: ${servers[name].failure ?? ""}`);
    print(`${DOC_FILE} left as it was: it is updated only by a run in which both servers complete every scenario.`);
    return 1;
  }
  replaceSection(DOC_FILE, SECTION, docSection(results, tableText, disturbed));
  print(`Section "${SECTION}" of ${DOC_FILE} updated`);
  return 0;
}

main()
  .then(async (code) => {
    await cleanups.run();
    process.exitCode = code;
  })
  .catch(async (err: unknown) => {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanups.run();
    process.exitCode = 1;
  })
  // A socket some library still holds must not keep a finished run alive.
  .finally(() => process.exit());
