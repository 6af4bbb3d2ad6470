import { readFileSync, readdirSync } from "node:fs";
import { cpuSnapshot } from "./cpu.js";

/**
 * CPU used by user-space processes that are not part of this run, to tell a
 * disturbed run from a clean one when the server measured makes the kernel
 * work. cpu.ts counts everything the machine did beyond our processes as
 * someone else's; a server that fsyncs every append keeps the kernel's block
 * and journal threads busy (about a tenth of this 2-core VM), which is that
 * server's cost, not a disturbance. Here kernel threads are left out, and the
 * descendants of our processes (tsx's esbuild service, ...) count as ours.
 * A process that starts and ends between two snapshots is missed.
 */

/** `flags` bit of a kernel thread (include/linux/sched.h). */
const PF_KTHREAD = 0x00200000;

interface ProcessSample {
  ppid: number;
  /** utime + stime, in clock ticks. */
  ticks: number;
  kernelThread: boolean;
}

export interface ProcessesSnapshot {
  /** Clock ticks of the whole machine, summed over all CPUs. */
  totalTicks: number;
  processes: Map<number, ProcessSample>;
}

export function snapshotProcesses(): ProcessesSnapshot {
  const processes = new Map<number, ProcessSample>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // Exited since the listing.
    }
    // Fields after "(comm)" (proc(5)): state, ppid, pgrp, session, tty_nr, tpgid, flags, ..., utime (12th), stime (13th).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    processes.set(Number(entry), { ppid: fields[1] ?? 0, ticks: (fields[11] ?? 0) + (fields[12] ?? 0), kernelThread: ((fields[6] ?? 0) & PF_KTHREAD) !== 0 });
  }
  return { totalTicks: cpuSnapshot({ gateway: 0, nats: 0 }).total, processes };
}

/** Share of the whole machine (all cores = 100%) used between two snapshots by user-space processes outside `ours` and their descendants. */
export function otherProcessesPct(from: ProcessesSnapshot, to: ProcessesSnapshot, ours: readonly number[]): number {
  const roots = new Set(ours);
  const isOurs = (pid: number): boolean => {
    for (let current = pid, hops = 0; current > 1 && hops < 64; hops++) {
      if (roots.has(current)) return true;
      current = to.processes.get(current)?.ppid ?? 0;
    }
    return false;
  };
  let ticks = 0;
  for (const [pid, sample] of to.processes) {
    if (sample.kernelThread || isOurs(pid)) continue;
    // A process born in the window spent all its ticks in it.
    ticks += sample.ticks - (from.processes.get(pid)?.ticks ?? 0);
  }
  const total = to.totalTicks - from.totalTicks;
  return total <= 0 ? 0 : Math.round((100 * Math.max(0, ticks)) / total);
}
