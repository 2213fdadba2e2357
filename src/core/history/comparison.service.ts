import { injectable } from 'tsyringe';
import { DataSource } from 'typeorm';
import type { Caller } from '../auth/auth.service';
import { parseId } from '../app/validation';
import { ForbiddenError, InvalidInputError, NotFoundError } from '../errors';
import { Run } from '../records/run.entity';
import { FILTER_LIST_MAX, HistoryService, type MetricThreshold, type SeedGroup } from './history.service';
import { differingKeys, flattenRunSettings } from './signature';
import { metricExpression, parseMetricName, SqlParams, visibleProjectCondition } from './sql';
import { RunLoader } from './run-loader';
import { VersionedCache } from './versioned-cache';

export const COMPARE_MAX_RUNS = 50;
export const LEADERBOARD_MAX = 100;
export const PARETO_COSTS = ['macs', 'latencyMs', 'params', 'bytesOnDisk'] as const;
export type ParetoCost = (typeof PARETO_COSTS)[number];

export interface StageWall {
  stage: number;
  plugin: string;
  wallMs: number;
}

export interface ComparisonRow {
  run: Run;
  signature: string;
  signatureText: string;
  /** Only the settings (seed, stage plugins@versions, config keys) that differ between the compared runs. */
  differences: Record<string, string>;
  top1: number | null;
  params: number | null;
  macs: number | null;
  bytesOnDisk: number | null;
  latencyMs: number | null;
  latencyBackend: string | null;
  latencyBatchSize: number | null;
  stageWallMs: StageWall[];
}

export interface Comparison {
  rows: ComparisonRow[];
  /** Seed groups of the compared runs' signatures (all succeeded runs the caller may read with each). */
  groups: SeedGroup[];
}

export interface LeaderboardInput {
  projectIds?: string[] | null;
  teamIds?: string[] | null;
  metric?: string | null;
  constraints?: MetricThreshold[] | null;
  paretoAgainst?: ParetoCost | null;
  first?: number | null;
}

export interface LeaderboardEntry {
  /** Position in the ranking (ties share one); null for front members outside the first entries. */
  rank: number | null;
  run: Run;
  value: number;
  cost: number | null;
}

export interface Leaderboard {
  metric: string;
  paretoAgainst: ParetoCost;
  entries: LeaderboardEntry[];
  /** Runs no other candidate beats on both the metric (higher) and the cost (lower), by cost. */
  paretoFront: LeaderboardEntry[];
}

function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** Side-by-side comparison of runs and leaderboards over the projects a caller may read. */
@injectable()
export class ComparisonService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly history: HistoryService,
    private readonly cache: VersionedCache,
  ) {
    this.runs = new RunLoader(dataSource);
  }

  private readonly runs: RunLoader;

  async compareRuns(caller: Caller, ids: string[]): Promise<Comparison> {
    if (ids.length === 0 || ids.length > COMPARE_MAX_RUNS) throw new InvalidInputError(`compareRuns takes 1 to ${COMPARE_MAX_RUNS} run ids (got ${ids.length})`);
    const unique = [...new Set(ids.map((id) => parseId('ids', id)))];
    // The runs and who may read each, in one round trip.
    let loaded = await this.runs.byIdsWithAccess(unique);
    const access = new Map(loaded.map((a) => [a.run.id, a]));
    for (const id of unique) {
      const row = access.get(id);
      if (!row) throw new NotFoundError(`no run with id ${id}`);
      if (row.teamId !== caller.team.id && !row.shared) throw new ForbiddenError(`run ${id} belongs to another team's project that is not shared for comparison`);
    }
    if (loaded.some((a) => a.run.signature === null)) {
      await this.history.ensureSignatures(unique);
      loaded = await this.runs.byIdsWithAccess(unique);
    }
    const runs = loaded.map((a) => a.run);
    const byId = new Map(runs.map((r) => [r.id, r]));
    const ordered = unique.map((id) => byId.get(id)!);
    const settings = ordered.map((run) => flattenRunSettings(run.seed, this.history.stagesOf(run)));
    const differing = differingKeys(settings);
    const rows = ordered.map((run, i) => {
      const m = run.finalMetrics ?? {};
      const walls = Array.isArray(m.stageWallMs) ? (m.stageWallMs as StageWall[]) : [];
      return {
        run,
        signature: run.signature!,
        signatureText: run.signatureText!,
        differences: Object.fromEntries(differing.map((k) => [k, settings[i][k] ?? null])) as Record<string, string>,
        top1: numberOrNull(m.top1),
        params: numberOrNull(m.params),
        macs: numberOrNull(m.macs),
        bytesOnDisk: numberOrNull(m.bytesOnDisk),
        latencyMs: numberOrNull(m.latencyMs),
        latencyBackend: typeof m.latencyBackend === 'string' ? m.latencyBackend : null,
        latencyBatchSize: numberOrNull(m.latencyBatchSize),
        stageWallMs: walls.map((w) => ({ stage: Number(w.stage), plugin: String(w.plugin), wallMs: Number(w.wallMs) })),
      };
    });
    const groups = await this.history.seedGroups(caller, [...new Set(rows.map((r) => r.signature))]);
    return { rows, groups };
  }

  /**
   * Succeeded runs the caller may read, in the chosen projects or teams, meeting every constraint,
   * ranked by `metric` (higher first); and the Pareto front of metric against `paretoAgainst`.
   */
  async leaderboard(caller: Caller, input: LeaderboardInput): Promise<Leaderboard> {
    const metric = parseMetricName(input.metric ?? 'top1');
    const paretoAgainst = input.paretoAgainst ?? 'macs';
    if (!PARETO_COSTS.includes(paretoAgainst)) throw new InvalidInputError(`paretoAgainst must be one of ${PARETO_COSTS.join(', ')}`);
    const first = input.first ?? 20;
    if (!Number.isInteger(first) || first < 1 || first > LEADERBOARD_MAX) throw new InvalidInputError(`first must be an integer from 1 to ${LEADERBOARD_MAX} (got ${first})`);
    const params = new SqlParams();
    const value = metricExpression('r', metric, params);
    const cost = metricExpression('r', paretoAgainst, params);
    const where = [`r.status = 'succeeded'`, visibleProjectCondition('p', caller.team.id, params), `${value} IS NOT NULL`];
    const projectIds = limitList('projectIds', input.projectIds)?.map((id) => parseId('projectIds', id));
    if (projectIds) where.push(`r.project_id = ANY(${params.add(projectIds)}::uuid[])`);
    const teamIds = limitList('teamIds', input.teamIds)?.map((id) => parseId('teamIds', id));
    if (teamIds) where.push(`p.team_id = ANY(${params.add(teamIds)}::uuid[])`);
    for (const c of limitList('constraints', input.constraints) ?? []) {
      if (c.min == null && c.max == null) throw new InvalidInputError(`constraint on "${c.name}" needs min or max`);
      const expr = metricExpression('r', c.name, params);
      if (c.min != null) where.push(`${expr} >= ${params.add(c.min)}`);
      if (c.max != null) where.push(`${expr} <= ${params.add(c.max)}`);
    }
    // Ranking and front read every candidate run: cached under the runs version; the runs are read fresh.
    const rows: Array<{ part: 'rank' | 'front'; id: string; value: number; cost: number | null; rk: number | null }> = await this.cache.query(
      `WITH c AS MATERIALIZED (
         SELECT r.id, r.created_at, ${value} AS value, ${cost} AS cost
           FROM runs r JOIN projects p ON p.id = r.project_id
          WHERE ${where.join(' AND ')}
       ),
       ranked AS (
         SELECT 'rank' AS part, id, value, cost, (rank() OVER (ORDER BY value DESC))::int AS rk
           FROM c ORDER BY value DESC, created_at DESC, id LIMIT ${first}
       ),
       front AS (
         SELECT 'front' AS part, id, value, cost, NULL::int AS rk
           FROM (SELECT id, value, cost,
                        max(value) OVER (ORDER BY cost, value DESC, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS best
                   FROM c WHERE cost IS NOT NULL) f
          WHERE best IS NULL OR value > best
          ORDER BY cost LIMIT ${LEADERBOARD_MAX}
       )
       SELECT * FROM ranked UNION ALL SELECT * FROM front`,
      params.values,
      { version: caller.runsVersion },
    );
    const runs = await this.runs.byIds([...new Set(rows.map((r) => r.id))]);
    const byId = new Map(runs.map((r) => [r.id, r]));
    const entry = (r: (typeof rows)[number], rank: number | null): LeaderboardEntry => ({ rank, run: byId.get(r.id)!, value: Number(r.value), cost: r.cost == null ? null : Number(r.cost) });
    const ranked = rows.filter((r) => r.part === 'rank' && byId.has(r.id));
    const front = rows.filter((r) => r.part === 'front' && byId.has(r.id));
    const rankOf = new Map(ranked.map((r) => [r.id, r.rk ?? 0]));
    return {
      metric,
      paretoAgainst,
      entries: ranked.map((r) => entry(r, r.rk ?? 0)),
      paretoFront: front.map((r) => entry(r, rankOf.get(r.id) ?? null)),
    };
  }
}

function limitList<T>(what: string, list: T[] | null | undefined): T[] | undefined {
  if (!list || list.length === 0) return undefined;
  if (list.length > FILTER_LIST_MAX) throw new InvalidInputError(`${what} may hold at most ${FILTER_LIST_MAX} entries (got ${list.length})`);
  return list;
}
