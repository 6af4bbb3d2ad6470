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
  /** What stood in the gateway's place (its CPU is `cpu.gatewayPct`), when it was not the gateway. */
  server?: string;
}

/** A server measured in one scenario instead of the gateway, its CPU counted where the gateway's would be. */
export interface StandIn {
  name: string;
  pid: number;
}

export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export class Phases {
  readonly windows: Record<string, PhaseWindow> = {};

  constructor(private readonly pids: { gateway: number; nats: number }) {}

  async time<T>(name: string, run: () => Promise<T>, standIn?: StandIn): Promise<T> {
    const pids = standIn === undefined ? this.pids : { ...this.pids, gateway: standIn.pid };
    const startUs = monotonicUs();
    const before = cpuSnapshot(pids);
    try {
      return await run();
    } finally {
      this.windows[name] = { startUs, endUs: monotonicUs(), cpu: cpuUsage(before, cpuSnapshot(pids)), ...(standIn === undefined ? {} : { server: standIn.name }) };
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
