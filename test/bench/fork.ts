/**
 * `npx tsx test/bench/fork.ts [--events 100000] [--rounds 3]`: how long `POST /streams/<path>/fork` takes on a long
 * agent stream (docs/ARCHITECTURE.md, "Forks"; the bound is 3 s for 100,000 events), beside appending the same
 * events in batches of 1,000, in one run against one nats-server and one gateway process. The stream is an agent's
 * loop (inputs, request starts, settlements naming their request, tool calls), so offsets are translated as in life.
 * Results: stdout and .data/bench-fork.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startNatsServer } from "../../deploy/local/nats-server.js";
import { REPO_ROOT, startGatewayProcess } from "./support/gateway-process.js";
import { getJson, keepAliveAgent, postJson } from "./support/http.js";
import { print, progress } from "./support/log.js";

interface Stored {
  offset: number;
}

const { values } = parseArgs({ options: { events: { type: "string", default: "100000" }, rounds: { type: "string", default: "3" } } });
const EVENTS = Number(values.events);
const ROUNDS = Number(values.rounds);
const BATCH = 1000;

/** One turn of an agent's loop: 4 events, the last two naming the request by its offset. */
function turn(i: number, requestOffset: number): unknown[] {
  return [
    { type: "agent/tool-call-requested", payload: { requestOffset, callId: `c${i}`, name: "lookup", arguments: '{"word":"mesh"}' } },
    { type: "agent/tool-call-settled", payload: { callId: `c${i}`, result: { definition: "a network of connected parts" } } },
    { type: "agent/input-added", payload: { role: "user", content: `question ${i}` } },
    { type: "agent/llm-request-started", payload: { model: "bench-model" } },
  ];
}

async function main(): Promise<void> {
  const nats = await startNatsServer();
  const gateway = await startGatewayProcess({ natsUrl: nats.url, env: { BREAKER_MAX_EVENTS_PER_SECOND: "1000000", BREAKER_BURST: "1000000" }, onLog: (line) => {
    progress(`gateway: ${line}`);
  } });
  const agent = keepAliveAgent(4);
  const results: { round: number; appendMs: number; forkMs: number; halfForkMs: number; events: number }[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const source = `/bench/fork-source-${round}`;
      progress(`round ${round}: appending ${EVENTS} events in batches of ${BATCH}`);
      const appendStart = performance.now();
      let lastRequest = 1;
      let middle = 0;
      for (let written = 0; written < EVENTS; written += BATCH) {
        const batch = Array.from({ length: BATCH / 4 }, (_, i) => turn(written + i, lastRequest)).flat();
        const stored = await postJson<Stored[]>(agent, `${gateway.url}/streams${source}`, JSON.stringify(batch));
        lastRequest = (stored.at(-1) as Stored).offset;
        if (written + BATCH >= EVENTS / 2 && middle === 0) middle = lastRequest;
      }
      const appendMs = performance.now() - appendStart;

      progress(`round ${round}: forking at the last event`);
      const forkStart = performance.now();
      const forked = await postJson<{ events: number }>(agent, `${gateway.url}/streams${source}/fork`, JSON.stringify({ at: lastRequest, to: `/bench/fork-${round}` }));
      const forkMs = performance.now() - forkStart;
      const halfStart = performance.now();
      await postJson(agent, `${gateway.url}/streams${source}/fork`, JSON.stringify({ at: middle, to: `/bench/fork-half-${round}` }));
      const halfForkMs = performance.now() - halfStart;
      const listed = await getJson<{ streams: { lastOffset: number; eventCount: number }[] }>(agent, `${gateway.url}/streams?prefix=/bench/fork-${round}`);
      if (forked.events !== EVENTS || listed.streams[0]?.eventCount !== EVENTS + 1) throw new Error(`the fork holds ${listed.streams[0]?.eventCount ?? 0} events, not ${EVENTS + 1}`);
      results.push({ round, appendMs, forkMs, halfForkMs, events: forked.events });
      print(`round ${round}: appending ${EVENTS} events ${(appendMs / 1000).toFixed(2)} s; fork at the last ${(forkMs / 1000).toFixed(2)} s; fork at the middle ${(halfForkMs / 1000).toFixed(2)} s; fork/append ${(forkMs / appendMs).toFixed(2)}`);
    }
  } finally {
    await gateway.stop();
    await nats.stop();
  }
  const range = (pick: (r: (typeof results)[number]) => number): string => `${(Math.min(...results.map(pick)) / 1000).toFixed(2)}-${(Math.max(...results.map(pick)) / 1000).toFixed(2)} s`;
  print(`\nfork of ${EVENTS} events: ${range((r) => r.forkMs)} (append of the same in batches: ${range((r) => r.appendMs)}); fork of half: ${range((r) => r.halfForkMs)}`);
  mkdirSync(join(REPO_ROOT, ".data"), { recursive: true });
  writeFileSync(join(REPO_ROOT, ".data", "bench-fork.json"), JSON.stringify({ events: EVENTS, results }, null, 2));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
