import { InvalidInputError } from '../errors';

/** Collects positional parameters for a hand-written query: `add(v)` returns its `$n`. */
export class SqlParams {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/**
 * Projects a caller may read runs of: its own team's, and other teams' projects shared for
 * comparison. `alias` is the projects table's alias in the surrounding query.
 */
export function visibleProjectCondition(alias: string, teamId: string, params: SqlParams): string {
  return `(${alias}.team_id = ${params.add(teamId)} OR ${alias}.shared_for_comparison)`;
}

/** Final metrics kept as generated columns on runs (migration 1764200000000); others are read from jsonb. */
const METRIC_COLUMNS: Record<string, string> = {
  top1: 'metric_top1',
  params: 'metric_params',
  macs: 'metric_macs',
  bytes: 'metric_bytes',
  bytesOnDisk: 'metric_bytes',
  latencyMs: 'metric_latency_ms',
};

const METRIC_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** Checks a final-metric name a caller sent (top1, params, macs, latencyMs, bytesOnDisk, or any numeric final metric). */
export function parseMetricName(name: string): string {
  if (!METRIC_NAME.test(name)) {
    throw new InvalidInputError(`metric name must be letters, digits or _ starting with a letter (got ${JSON.stringify(name)}); e.g. top1, params, macs, latencyMs`);
  }
  return name;
}

/** SQL for the numeric value of a final metric of run alias `r`: a column when there is one, else a guarded jsonb read. */
export function metricExpression(alias: string, name: string, params: SqlParams): string {
  const column = METRIC_COLUMNS[parseMetricName(name)];
  if (column) return `${alias}.${column}`;
  const key = params.add(name);
  return `(CASE WHEN jsonb_typeof(${alias}.final_metrics -> ${key}::text) = 'number' THEN (${alias}.final_metrics ->> ${key}::text)::double precision END)`;
}
