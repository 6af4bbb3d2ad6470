import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { PhaseWindow } from "./support/phases.js";
import { print } from "./support/log.js";

/**
 * Summarise a V8 .cpuprofile (as written by `node --cpu-prof`, e.g. by
 * `BENCH_CPU_PROF=1 npm run bench`): top functions by self time, and self
 * time grouped by where the code lives (our code, each package, Node
 * internals, GC).
 *
 *   npx tsx test/bench/profile-summary.ts <file.cpuprofile> [--phase single] [--top 25]
 *
 * --phase keeps only the samples taken while that scenario ran, using the
 * windows in .data/bench-results.json (same monotonic clock as the profile).
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function owner(frame: CallFrame): string {
  const url = frame.url;
  if (url === "") return frame.functionName.startsWith("(") ? frame.functionName : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1] !== undefined) return pkg[1];
  if (url.startsWith("node:")) return "node internals";
  const local = /\/(gateway|shared|processors|deploy|test)\//.exec(url);
  return local?.[1] !== undefined ? `agentmesh ${local[1]}/` : url;
}

function label(frame: CallFrame): string {
  const file = frame.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(gateway|shared)\//, "$1/");
  return `${frame.functionName === "" ? "(anonymous)" : frame.functionName} ${file === "" ? "" : `${file}:${frame.lineNumber + 1}`}`.trim();
}

function phaseWindow(name: string, resultsFile: string): PhaseWindow {
  const results = JSON.parse(readFileSync(resultsFile, "utf8")) as { phases?: Record<string, PhaseWindow> };
  const window = results.phases?.[name];
  if (window === undefined) throw new Error(`no phase "${name}" in ${resultsFile}; known: ${Object.keys(results.phases ?? {}).join(", ")}`);
  return window;
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { phase: { type: "string" }, results: { type: "string", default: ".data/bench-results.json" }, top: { type: "string", default: "25" } },
  });
  const file = positionals[0];
  if (file === undefined) throw new Error("usage: tsx test/bench/profile-summary.ts <file.cpuprofile> [--phase name] [--results file] [--top N]");
  const top = Number(values.top);
  const window = values.phase === undefined ? null : phaseWindow(values.phase, values.results);
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfByLabel = new Map<string, number>();
  const selfByOwner = new Map<string, number>();
  let total = 0;
  // Sample i was taken at startTime + the sum of timeDeltas[0..i].
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (node === undefined) return;
    if (window !== null && (at < window.startUs || at > window.endUs)) return;
    total += delta;
    const key = label(node.callFrame);
    selfByLabel.set(key, (selfByLabel.get(key) ?? 0) + delta);
    const who = owner(node.callFrame);
    selfByOwner.set(who, (selfByOwner.get(who) ?? 0) + delta);
  });
  const busy = total - (selfByOwner.get("(idle)") ?? 0);
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  print(`${file}${values.phase === undefined ? "" : ` (phase ${values.phase})`}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (percentages are of busy time)`);
  print("\nSelf time by owner:");
  for (const [who, us] of [...selfByOwner].filter(([who]) => who !== "(idle)").sort((a, b) => b[1] - a[1]).slice(0, 15)) print(`  ${pct(us)}  ${who}`);
  print(`\nTop ${top} functions by self time:`);
  for (const [key, us] of [...selfByLabel].filter(([key]) => !key.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, top)) print(`  ${pct(us)}  ${key}`);
}

main();
