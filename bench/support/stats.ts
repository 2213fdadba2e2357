/** Mean and sample standard deviation (n − 1; 0 for a single value). */
export function meanStd(values: readonly number[]): { mean: number; std: number } {
  const n = values.length;
  if (n === 0) return { mean: Number.NaN, std: Number.NaN };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, std: Math.sqrt(variance) };
}

/** "mean ± std" in percent with one decimal, for tables of accuracies in [0, 1]. */
export function formatPercent({ mean, std }: { mean: number; std: number }): string {
  return `${(100 * mean).toFixed(2)} ± ${(100 * std).toFixed(2)}`;
}
