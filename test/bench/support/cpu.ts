import { readFileSync } from "node:fs";

/**
 * CPU accounting from /proc, to tell a clean run from one disturbed by other
 * work on the machine: the machine's busy time minus the time used by this
 * run's own processes is what something else took.
 */

export interface CpuSnapshot {
  /** Clock ticks summed over all CPUs. */
  total: number;
  busy: number;
  /** This process with its reaped children (the fan-out workers, once they exit). */
  bench: number;
  gateway: number;
  nats: number;
}

/** Shares of the whole machine (all cores = 100%, so one saturated core of two is 50%). */
export interface CpuUsage {
  busyPct: number;
  benchPct: number;
  gatewayPct: number;
  natsPct: number;
  /** Used by processes that are not part of this run. */
  foreignPct: number;
}

function ticksOfProcess(pid: number, withReapedChildren: boolean): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  // Fields after "(comm)": state is field 3, utime/stime 14/15, cutime/cstime 16/17 (proc(5)).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  const own = (fields[11] ?? 0) + (fields[12] ?? 0);
  return withReapedChildren ? own + (fields[13] ?? 0) + (fields[14] ?? 0) : own;
}

export function cpuSnapshot(pids: { gateway: number; nats: number }): CpuSnapshot {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return {
    total: busy + idle + iowait,
    busy,
    bench: ticksOfProcess(process.pid, true),
    gateway: ticksOfProcess(pids.gateway, false),
    nats: ticksOfProcess(pids.nats, false),
  };
}

export function cpuUsage(from: CpuSnapshot, to: CpuSnapshot): CpuUsage {
  const total = to.total - from.total;
  const pct = (ticks: number): number => (total <= 0 ? 0 : Math.round((100 * ticks) / total));
  const bench = to.bench - from.bench;
  const gateway = to.gateway - from.gateway;
  const nats = to.nats - from.nats;
  const busy = to.busy - from.busy;
  return { busyPct: pct(busy), benchPct: pct(bench), gatewayPct: pct(gateway), natsPct: pct(nats), foreignPct: pct(Math.max(0, busy - bench - gateway - nats)) };
}
