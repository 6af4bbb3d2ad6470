/** Small numeric helpers; percentiles use the nearest-rank method on a sorted copy. */

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Milliseconds, rounded to microseconds so the JSON stays readable. */
export function summarise(valuesMs: readonly number[]): LatencySummary {
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  return {
    count: valuesMs.length,
    p50: round(percentile(valuesMs, 50)),
    p90: round(percentile(valuesMs, 90)),
    p99: round(percentile(valuesMs, 99)),
    max: round(valuesMs.reduce((m, v) => Math.max(m, v), Number.NEGATIVE_INFINITY)),
    mean: round(mean(valuesMs)),
  };
}

export function perSecond(count: number, elapsedMs: number): number {
  return elapsedMs <= 0 ? 0 : Math.round((count * 1000) / elapsedMs);
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}
