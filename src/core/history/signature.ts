import crypto from 'node:crypto';

/** One stage as a signature sees it. */
export interface SignatureStage {
  kind: string;
  plugin: string;
  version: string;
  config: Record<string, unknown>;
}

export interface PipelineSignature {
  /** Hex SHA-256 (first 32 characters) of the canonical form: equal for runs of the same method. */
  hash: string;
  /** `kind:plugin@version(key=value,...) → ...`, keys sorted. */
  text: string;
}

/**
 * Config keys that do not change what a stage computes (bookkeeping), left out of signatures so that
 * runs differing only in them group together. Everything else is a key parameter.
 */
const NON_KEY_PARAMETERS = new Set(['logEvery', 'reportEvery', 'checkpointEvery', 'verbose']);

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

function keyParameters(config: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).filter(([k]) => !NON_KEY_PARAMETERS.has(k)));
}

/** The signature of an ordered list of stages: kinds, plugins, versions and key parameters, in order. */
export function pipelineSignature(stages: SignatureStage[]): PipelineSignature {
  const canonical = stages.map((s) => ({ kind: s.kind, plugin: s.plugin, version: s.version, config: keyParameters(s.config) }));
  const hash = crypto.createHash('sha256').update(canonicalJson(canonical)).digest('hex').slice(0, 32);
  const text = canonical
    .map((s) => {
      const params = Object.keys(s.config)
        .sort()
        .map((k) => `${k}=${canonicalJson(s.config[k])}`)
        .join(',');
      return `${s.kind}:${s.plugin}@${s.version}(${params})`;
    })
    .join(' → ');
  return { hash, text };
}

/**
 * The stages of a run from what it stored: `config.stages` ([{plugin, config}]) and `plugin_versions`;
 * `kindOf` names a plugin's kind (from the registry). Unknown versions or kinds read as '?'.
 */
export function stagesOfRun(
  runConfig: Record<string, unknown>,
  pluginVersions: Record<string, string> | null,
  kindOf: (plugin: string) => string | undefined,
): SignatureStage[] {
  const stored = Array.isArray(runConfig.stages) ? (runConfig.stages as Array<{ plugin?: unknown; config?: unknown }>) : [];
  return stored.map((s) => {
    const plugin = typeof s.plugin === 'string' ? s.plugin : '?';
    return {
      kind: kindOf(plugin) ?? '?',
      plugin,
      version: pluginVersions?.[plugin] ?? '?',
      config: s.config && typeof s.config === 'object' && !Array.isArray(s.config) ? (s.config as Record<string, unknown>) : {},
    };
  });
}

/**
 * Flattens a run's comparable settings into `path → canonical value` (seed, each stage's plugin,
 * version and config keys), so that two runs can be compared key by key.
 */
export function flattenRunSettings(seed: number, stages: SignatureStage[]): Record<string, string> {
  const flat: Record<string, string> = { seed: String(seed) };
  stages.forEach((s, i) => {
    flat[`stages.${i}.plugin`] = `${s.plugin}@${s.version}`;
    for (const [k, v] of Object.entries(s.config)) flat[`stages.${i}.config.${k}`] = canonicalJson(v);
  });
  return flat;
}

/** Keys whose values are not all equal across `rows` (a key missing from a row counts as a difference). */
export function differingKeys(rows: Array<Record<string, string>>): string[] {
  const keys = new Set(rows.flatMap((r) => Object.keys(r)));
  return [...keys].filter((k) => new Set(rows.map((r) => (k in r ? r[k] : '\u0000missing'))).size > 1).sort();
}

/** Mean and sample standard deviation (n − 1; null for a single value). */
export function meanStd(values: number[]): { mean: number; std: number | null; n: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, std: null, n };
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { mean, std: Math.sqrt(variance), n };
}

/**
 * Pareto front of (value to maximise, cost to minimise): entries no other entry beats on both
 * (at least as good on both and strictly better on one), sorted by cost. Used to check the SQL.
 */
export function paretoFront<T extends { value: number; cost: number }>(entries: T[]): T[] {
  const sorted = [...entries].sort((a, b) => a.cost - b.cost || b.value - a.value);
  const front: T[] = [];
  let best = -Infinity;
  for (const e of sorted) {
    if (e.value > best) {
      front.push(e);
      best = e.value;
    }
  }
  return front;
}
