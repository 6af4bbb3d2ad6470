/**
 * Clients that append under load the way a careful client does: every event
 * has its own idempotency key, and any failure (503, a dropped connection) is
 * retried with the same key until a 2xx. What they record is what the gateway
 * acknowledged, to check against the log afterwards.
 */
export interface LoadResult {
  /** idempotency key -> the offset a 2xx answered with. */
  acknowledged: Map<string, number>;
  /** Failed attempts and how long each took to fail, in ms. */
  failures: { status: number; ms: number }[];
}

export async function appendUnderLoad(options: { baseUrl: () => string; path: string; writers: number; eventsPerWriter: number; pauseMs?: number; deadlineMs?: number }): Promise<LoadResult> {
  const result: LoadResult = { acknowledged: new Map(), failures: [] };
  const deadline = Date.now() + (options.deadlineMs ?? 60_000);
  await Promise.all(
    Array.from({ length: options.writers }, async (_, writer) => {
      for (let i = 0; i < options.eventsPerWriter; i++) {
        const key = `w${writer}-e${i}`;
        for (;;) {
          if (Date.now() > deadline) throw new Error(`writer ${writer} could not append ${key} before the deadline`);
          const started = Date.now();
          try {
            const response = await fetch(`${options.baseUrl()}/streams${options.path}`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ type: "load", payload: { writer, i }, idempotencyKey: key }),
              signal: AbortSignal.timeout(10_000),
            });
            if (response.ok) {
              result.acknowledged.set(key, ((await response.json()) as { offset: number }).offset);
              break;
            }
            await response.body?.cancel();
            result.failures.push({ status: response.status, ms: Date.now() - started });
          } catch {
            result.failures.push({ status: 0, ms: Date.now() - started });
          }
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        if (options.pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
      }
    }),
  );
  return result;
}
