import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import { Defaults } from "../../shared/contract/wire.js";
import { checks, load1, machineInfo, phaseLines, table, writeResults, type BenchResults } from "./report.js";
import { appendThroughput } from "./scenarios/appends.js";
import { catchup } from "./scenarios/catchup.js";
import { fanout } from "./scenarios/fanout.js";
import { appendToSseLatency } from "./scenarios/latency.js";
import { JetStreamPublisher } from "../../shared/nats/jetstream-publisher.js";
import { rawPublish } from "./scenarios/raw.js";
import { REPO_ROOT, startGatewayProcess } from "./support/gateway-process.js";
import { print, progress } from "./support/log.js";
import { Phases } from "./support/phases.js";
import { startChildServer } from "./support/child-server.js";
import { UndoStack } from "./support/undo-stack.js";

/**
 * `npm run bench`: start a private nats-server and a gateway process, run
 * every scenario against them, print a table and write
 * .data/bench-results.json. See docs/benchmarks.md.
 *
 * BENCH_ONLY=single,batch,... runs a subset (fanout, raw, single, ceiling,
 * batch, latency, catchup); BENCH_CPU_PROF=1 makes the gateway (and the bare Fastify server) write a V8 CPU
 * profile to .data/profiles/ when it stops; BENCH_GATEWAY_NODE_ARGS adds
 * node flags to the gateway process only.
 */

const SCENARIOS = ["fanout", "raw", "single", "ceiling", "batch", "latency", "catchup"] as const;
type Scenario = (typeof SCENARIOS)[number];

const RESULTS_FILE = join(REPO_ROOT, ".data", "bench-results.json");
const PROFILE_DIR = join(REPO_ROOT, ".data", "profiles");
const PROFILE = process.env.BENCH_CPU_PROF === "1";
/** CPU taken by other processes during a scenario, in % of the machine, above which the run is flagged as disturbed. */
const DISTURBED_PCT = 5;
/** Extra node flags for the gateway only, for experiments such as --max-semi-space-size=4. */
const GATEWAY_NODE_ARGS = (process.env.BENCH_GATEWAY_NODE_ARGS ?? "").split(" ").filter((arg) => arg !== "");

function selectedScenarios(): Set<Scenario> {
  const only = process.env.BENCH_ONLY;
  if (only === undefined || only === "") return new Set(SCENARIOS);
  const names = only.split(",").map((s) => s.trim());
  const unknown = names.filter((s) => !(SCENARIOS as readonly string[]).includes(s));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown scenario(s) ${unknown.join(", ")}; known: ${SCENARIOS.join(", ")}`);
  const selected = new Set(names as Scenario[]);
  // The append figures are ratios to the raw publish rate; single appends are shown beside the HTTP ceiling.
  if (selected.has("single") || selected.has("batch")) selected.add("raw");
  if (selected.has("single")) selected.add("ceiling");
  return selected;
}

const cleanups = new UndoStack();

async function main(): Promise<void> {
  const selected = selectedScenarios();
  const startedAt = new Date();
  const machine = machineInfo();
  const loadBefore = load1();
  progress(`${machine.nproc} CPUs (${machine.cpuModel}), node ${machine.node}, nats-server ${machine.natsServer}, load ${loadBefore}`);
  if (loadBefore > machine.nproc * 0.5) progress(`warning: load average ${loadBefore} before starting; numbers may be disturbed`);

  const nats = await startNatsServer();
  cleanups.push(() => nats.stop());
  const gateway = await startGatewayProcess({
    natsUrl: nats.url,
    nodeArgs: [...(PROFILE ? ["--cpu-prof", "--cpu-prof-dir", PROFILE_DIR] : []), ...GATEWAY_NODE_ARGS],
    onLog: (line) => { progress(`gateway: ${line}`); },
  });
  cleanups.push(() => gateway.stop());
  // noAsyncTraces, as the gateway connects: by default the v3 client builds two
  // extra Error objects (stack captures) per request, which costs a Node
  // publisher a third or more of its throughput. The default client is
  // measured too, so the cost of that option stays visible.
  const nc = await connect({ servers: nats.url, name: "agentmesh-bench", noAsyncTraces: true });
  cleanups.push(() => nc.close());
  const js = jetstream(nc, { timeout: 30_000 });
  progress(`nats-server at ${nats.url}, gateway pid ${gateway.pid} at ${gateway.url}`);

  const phases = new Phases({ gateway: gateway.pid, nats: nats.pid });
  const results: Omit<BenchResults, "checks" | "durationSec" | "loadavg"> = { startedAt: startedAt.toISOString(), machine, phases: phases.windows };

  // First, while the gateway is fresh: its RSS baseline is then its idle footprint, not a heap grown by earlier load.
  if (selected.has("fanout")) {
    progress("fan-out: 1,000 SSE clients on one stream, 200 events");
    results.fanout = await phases.time("fanout", () => fanout({
      baseUrl: gateway.url, path: "/bench/fanout", clients: 1000, workers: 2, events: 200, batchSize: 50,
      gatewayRss: () => gateway.rssBytes(),
      phases,
      registerCleanup: (step) => { cleanups.push(step); },
    }));
    progress(`fan-out: RSS +${results.fanout.rssMb.growth} MB, last client done after ${results.fanout.deliveryMs.lastClient} ms, correct: ${results.fanout.exactlyOnceInOrder}`);
  }
  if (selected.has("raw")) {
    progress("raw: windowed JetStream publish, 256 in flight, 20,000 to warm up then up to 150,000 messages or 5 s");
    const raw = { path: "/bench/raw", maxMessages: 150_000, maxMs: 5_000, window: 256, warmupMessages: 20_000 };
    // Two ways to publish from Node: the client's js.publish (one request per message), and acks matched on
    // one subscription (shared/nats/jetstream-publisher.ts, what the services use). The faster is the denominator.
    const publisher = new JetStreamPublisher(nc, 30_000);
    try {
      results.rawPublishAckTable = await phases.time("raw", () => rawPublish((subject, payload) => publisher.publish(subject, payload), raw));
    } finally {
      publisher.close();
    }
    results.rawPublishClient = await phases.time("rawClient", () => rawPublish((subject, payload) => js.publish(subject, payload), raw));
    results.rawPublish = results.rawPublishAckTable.perSec >= results.rawPublishClient.perSec ? results.rawPublishAckTable : results.rawPublishClient;
    const defaultClient = await connect({ servers: nats.url, name: "agentmesh-bench-default" });
    try {
      const defaultJs = jetstream(defaultClient, { timeout: 30_000 });
      results.rawPublishDefaultClient = await phases.time("rawDefaultClient", () => rawPublish((subject, payload) => defaultJs.publish(subject, payload), raw));
    } finally {
      await defaultClient.close();
    }
    progress(`raw: ${results.rawPublishAckTable.perSec} msgs/s with acks on one subscription, ${results.rawPublishClient.perSec} with js.publish (default client options: ${results.rawPublishDefaultClient.perSec} msgs/s)`);
  }
  if (selected.has("single")) {
    progress("single: POST one event per request, 32 connections, 10 s");
    results.single = await phases.time("single", () => appendThroughput({ baseUrl: gateway.url, path: "/bench/single", connections: 32, seconds: 10, eventsPerRequest: 1 }));
    progress(`single: ${results.single.eventsPerSec} events/s`);
  }
  if (selected.has("ceiling")) {
    progress("ceiling: the same load against a bare Fastify server that parses, answers 201 and stores nothing");
    const bare = await startChildServer({ name: "bare Fastify server", script: "test/bench/support/bare-fastify-main.ts", ...(PROFILE ? { nodeArgs: ["--cpu-prof", "--cpu-prof-dir", PROFILE_DIR] } : {}), onLog: (line) => { progress(`bare fastify: ${line}`); } });
    try {
      results.httpCeiling = await phases.time("ceiling", () => appendThroughput({ baseUrl: bare.url, path: "/bench/ceiling", connections: 32, seconds: 10, eventsPerRequest: 1 }), { name: "bare fastify", pid: bare.pid });
    } finally {
      await bare.stop();
    }
    const ofCeiling = results.single === undefined ? "" : `; single appends are ${Math.round((100 * results.single.eventsPerSec) / results.httpCeiling.eventsPerSec)}% of it`;
    progress(`ceiling: ${results.httpCeiling.requestsPerSec} requests/s${ofCeiling}`);
  }
  if (selected.has("batch")) {
    progress("batch: POST 100 events per request, 16 connections, 10 s");
    results.batch = await phases.time("batch", () => appendThroughput({ baseUrl: gateway.url, path: "/bench/batch", connections: 16, seconds: 10, eventsPerRequest: 100 }));
    progress(`batch: ${results.batch.eventsPerSec} events/s`);
  }
  if (selected.has("latency")) {
    progress("latency: one append every 2 ms for 10 s, one SSE reader");
    results.latency = await phases.time("latency", () => appendToSseLatency({ baseUrl: gateway.url, path: "/bench/lat", events: 5_000, intervalMs: 2, warmupEvents: 200 }));
    progress(`latency: p50 ${results.latency.delivery.p50} ms, p99 ${results.latency.delivery.p99} ms, max ${results.latency.delivery.max} ms`);
  }
  if (selected.has("catchup")) {
    results.catchup = await phases.time("catchup", () => catchup({ baseUrl: gateway.url, path: "/bench/catchup", events: 100_000, preloadBatch: 1000, js, streamName: Defaults.eventsStream, phases }));
  }

  const final = { ...results, durationSec: Math.round((Date.now() - startedAt.getTime()) / 1000), loadavg: { before: loadBefore, after: load1() } };
  const full: BenchResults = { ...final, checks: checks(final) };
  writeResults(RESULTS_FILE, full);
  print("");
  print(table(full.checks));
  print("");
  const code = `${machine.git.commit}${machine.git.uncommitted.length > 0 ? ` + uncommitted changes to ${machine.git.uncommitted.join(", ")}` : ""}`;
  print(`${machine.nproc} CPUs, ${machine.cpuModel}; node ${machine.node}; nats-server ${machine.natsServer}; code ${code}`);
  print(`${full.durationSec} s; 1-min load average ${full.loadavg.before} before, ${full.loadavg.after} after`);
  print(`Scenarios (CPU shares are of all ${machine.nproc} cores):\n${phaseLines(full.phases)}`);
  const disturbed = phases.disturbed(DISTURBED_PCT);
  if (disturbed.length > 0) print(`WARNING: other processes used CPU during ${disturbed.join(", ")}; rerun on a quiet machine before trusting these numbers`);
  print(`Full results: ${RESULTS_FILE}`);
}

main()
  .then(async () => {
    await cleanups.run();
    if (PROFILE) progress(`CPU profile written to ${PROFILE_DIR}`);
  })
  .catch(async (err: unknown) => {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanups.run();
    process.exitCode = 1;
  })
  // A socket some library still holds must not keep a finished run alive.
  .finally(() => process.exit());
