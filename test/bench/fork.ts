/**
 * `npx tsx test/bench/fork.ts [--events 100000] [--rounds 3]`: how long `POST /streams/<path>/fork` takes on a long
 * agent stream (docs/ARCHITECTURE.md, "Forks"; the issue's bound is 3 s for 100,000 events), beside appending the same
 * events in batches of 1,000, in one run against one nats-server and one gateway process. The stream is an agent's
 * log at its hardest to copy: every event names the one just before it (as a reaction names its cause, a settlement
 * its request), so each copy's offsets depend on the previous copy's.
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

const { values } = parseArgs({ options: { events: { type: "string", default: "100000" }, rounds: { type: "string", default: "3" }, background: { type: "string", default: "0" } } });
const EVENTS = Number(values.events);
const ROUNDS = Number(values.rounds);
/** Appends per second to another stream while each fork is made (0: none): the copier's guesses then go wrong. */
const BACKGROUND = Number(values.background);
const BATCH = 1000;

/**
 * A batch whose every event names the one before it: the offsets a batch gets are contiguous here (nothing else is
 * appended meanwhile), so event i of a batch after offset `last` names `last + i`. Checked after each batch.
 */
function chainedBatch(first: number, last: number): unknown[] {
  return Array.from({ length: BATCH }, (_, i) => {
    const previous = last + i;
    const n = first + i;
    return n % 2 === 0
      ? { type: "agent/tool-call-requested", payload: { requestOffset: previous, callId: `c${n}`, name: "lookup", arguments: '{"word":"mesh"}' }, source: { processor: "llm", causationOffset: previous } }
      : { type: "agent/tool-call-settled", payload: { callId: `c${n - 1}`, result: { definition: "a network of connected parts" } }, source: { processor: "tools", causationOffset: previous } };
  });
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
      const first = await postJson<Stored>(agent, `${gateway.url}/streams${source}`, JSON.stringify({ type: "agent/input-added", payload: { role: "user", content: "start" } }));
      let lastRequest = first.offset;
      let middle = 0;
      for (let written = 1; written < EVENTS; written += BATCH) {
        const stored = await postJson<Stored[]>(agent, `${gateway.url}/streams${source}`, JSON.stringify(chainedBatch(written, lastRequest).slice(0, EVENTS - written)));
        if (stored.some((e, i) => e.offset !== lastRequest + 1 + i)) throw new Error("a batch's offsets were not contiguous: the chain would name the wrong events");
        lastRequest = (stored.at(-1) as Stored).offset;
        if (written + BATCH >= EVENTS / 2 && middle === 0) middle = lastRequest;
      }
      const appendMs = performance.now() - appendStart;

      progress(`round ${round}: forking at the last event${BACKGROUND > 0 ? `, with ${BACKGROUND} appends/s to another stream` : ""}`);
      const busy = { on: BACKGROUND > 0, appended: 0 };
      const background = (async () => {
        const other = keepAliveAgent(1);
        while (busy.on) {
          await postJson(other, `${gateway.url}/streams/bench/fork-background`, JSON.stringify({ type: "noise" }));
          busy.appended += 1;
          await new Promise((resolve) => setTimeout(resolve, 1000 / BACKGROUND));
        }
      })();
      const forkStart = performance.now();
      const forked = await postJson<{ events: number }>(agent, `${gateway.url}/streams${source}/fork`, JSON.stringify({ at: lastRequest, to: `/bench/fork-${round}` }));
      const forkMs = performance.now() - forkStart;
      const halfStart = performance.now();
      await postJson(agent, `${gateway.url}/streams${source}/fork`, JSON.stringify({ at: middle, to: `/bench/fork-half-${round}` }));
      const halfForkMs = performance.now() - halfStart;
      busy.on = false;
      await background;
      if (BACKGROUND > 0) print(`round ${round}: ${busy.appended} background appends during the two forks (${Math.round((busy.appended * 1000) / (forkMs + halfForkMs))}/s)`);
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
