/** Latencies of one (adapter, operation), in milliseconds. */
export interface Samples {
  readonly latencies: number[];
}

/** The p-th percentile (0–100) of some numbers. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

/** Times one call, in milliseconds. */
export async function time(operation: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await operation();
  return performance.now() - start;
}

/**
 * Runs `operation` with `concurrency` workers pulling from one counter, for
 * `total` operations or until `milliseconds` have passed, whichever comes
 * first; answers how many ran and in how many seconds.
 */
export async function throughput(
  total: number,
  concurrency: number,
  operation: (i: number) => Promise<unknown>,
  milliseconds = Infinity,
): Promise<{ ops: number; seconds: number }> {
  let next = 0;
  let done = 0;
  const start = performance.now();
  const deadline = start + milliseconds;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < total && performance.now() < deadline; i = next++) {
        await operation(i);
        done += 1;
      }
    }),
  );
  return { ops: done, seconds: (performance.now() - start) / 1000 };
}

/** The list rotated by `by` places, so each round starts with another adapter. */
export function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/** The list in a random order (Fisher–Yates). */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const shuffled = [...items];
  for (let i = shuffled.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j] as T, shuffled[i] as T];
  }
  return shuffled;
}

/** Samples memory while `work` runs; answers the peak RSS above the start, in MB, and the result. */
export async function peakRss<T>(work: () => Promise<T>): Promise<{ peakMb: number; result: T }> {
  (globalThis as { gc?: () => void }).gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 2);
  try {
    const result = await work();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { peakMb: (peak - baseline) / 1024 / 1024, result };
  } finally {
    clearInterval(timer);
  }
}

/** The median of some numbers (NaN for none). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** A ratio measured once per round: its median over the rounds, and the smallest and largest round. */
export interface RatioSpread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly rounds: number;
}

/** `a[i] / b[i]` for each round i that both measured, summarised. */
export function ratioSpread(a: readonly number[], b: readonly number[]): RatioSpread {
  const ratios = a.flatMap((value, i) => {
    const other = b[i];
    return other === undefined || !(other > 0) || !Number.isFinite(value) ? [] : [value / other];
  });
  return {
    median: median(ratios),
    min: ratios.length === 0 ? Number.NaN : Math.min(...ratios),
    max: ratios.length === 0 ? Number.NaN : Math.max(...ratios),
    rounds: ratios.length,
  };
}
