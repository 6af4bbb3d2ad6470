import { cpuSnapshot, cpuUsage, type CpuUsage } from "./cpu.js";

/**
 * When each scenario ran, on the monotonic clock that V8 CPU profiles use
 * for `startTime` (CLOCK_MONOTONIC, in microseconds), so profile-summary.ts
 * can attribute a gateway profile to one scenario; and how busy the machine
 * was meanwhile, so a disturbed scenario shows.
 */

export interface PhaseWindow {
  startUs: number;
  endUs: number;
  cpu?: CpuUsage;
}

export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export class Phases {
  readonly windows: Record<string, PhaseWindow> = {};

  constructor(private readonly pids: { gateway: number; nats: number }) {}

  async time<T>(name: string, run: () => Promise<T>): Promise<T> {
    const startUs = monotonicUs();
    const before = cpuSnapshot(this.pids);
    try {
      return await run();
    } finally {
      this.windows[name] = { startUs, endUs: monotonicUs(), cpu: cpuUsage(before, cpuSnapshot(this.pids)) };
    }
  }

  /**
   * Names of the scenarios during which other work took more than
   * `thresholdPct` of the machine. A scenario with timed parts (catchup.sse,
   * ...) is judged by its parts, not as a whole.
   */
  disturbed(thresholdPct: number): string[] {
    const names = Object.keys(this.windows);
    return Object.entries(this.windows)
      .filter(([name]) => !names.some((other) => other.startsWith(`${name}.`) && this.windows[other]?.cpu !== undefined))
      .filter(([, w]) => (w.cpu?.foreignPct ?? 0) > thresholdPct)
      .map(([name, w]) => `${name} (${w.cpu?.foreignPct ?? 0}% of the machine)`);
  }
}
