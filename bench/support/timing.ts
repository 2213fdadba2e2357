export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export interface StepTiming {
  medianMs: number;
  minMs: number;
  steps: number;
  warmup: number;
  allMs: number[];
}

/**
 * Times `step` (which must finish its work before returning, e.g. by reading a result) `steps`
 * times after `warmup` untimed runs; reports the median.
 */
export async function timeSteps(step: () => Promise<void> | void, steps: number, warmup: number): Promise<StepTiming> {
  for (let i = 0; i < warmup; i++) await step();
  const allMs: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = process.hrtime.bigint();
    await step();
    allMs.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return { medianMs: median(allMs), minMs: Math.min(...allMs), steps, warmup, allMs };
}

/** Timings of the same work taken in several rounds, as one: all steps pooled, median over them. */
export function pooledTiming(parts: readonly StepTiming[]): StepTiming {
  const allMs = parts.flatMap((p) => p.allMs);
  return { medianMs: median(allMs), minMs: Math.min(...allMs), steps: allMs.length, warmup: parts.reduce((n, p) => n + p.warmup, 0), allMs };
}
