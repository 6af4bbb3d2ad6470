import { setTimeout as sleep } from "node:timers/promises";

/** Wait for `condition`, checked every `everyMs`; fail naming `what` after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs: number, what: string, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not done within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}
