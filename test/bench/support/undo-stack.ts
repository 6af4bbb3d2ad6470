import { progress } from "./log.js";

/**
 * What a benchmark started, stopped in reverse order on success, failure or
 * Ctrl-C (SIGINT/SIGTERM stop everything, then exit 130). A failing step is
 * reported and the others still run.
 */
export class UndoStack {
  private readonly steps: (() => Promise<void>)[] = [];
  private running: Promise<void> | undefined;

  constructor() {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.once(signal, () => {
        progress(`${signal}: stopping`);
        void this.run().finally(() => process.exit(130));
      });
    }
  }

  push(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) await step().catch((err: unknown) => { progress(`cleanup failed: ${String(err)}`); });
    })();
    return this.running;
  }
}
