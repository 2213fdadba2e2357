import { injectable } from 'tsyringe';
import { DataSource } from 'typeorm';
import type { Caller } from '../auth/auth.service';
import { parseId } from '../app/validation';
import { ForbiddenError, InvalidInputError, NotFoundError } from '../errors';
import { PluginRegistry } from '../plugins/registry';
import { RunStatus } from '../records/enums';
import { Pipeline } from '../records/pipeline.entity';
import { Run } from '../records/run.entity';
import { RunService } from '../runs/run.service';
import { pipelineSignature, stagesOfRun, type PipelineSignature, type SignatureStage } from './signature';
import { metricExpression, SqlParams, visibleProjectCondition } from './sql';
import { RunLoader } from './run-loader';
import { VersionedCache } from './versioned-cache';

export const HISTORY_PAGE_DEFAULT = 20;
export const HISTORY_PAGE_MAX = 100;
export const SERIES_MAX_POINTS = 5_000;
/** Most entries a list argument (ids, plugins...) may hold. */
export const FILTER_LIST_MAX = 100;

export interface MetricThreshold {
  name: string;
  min?: number | null;
  max?: number | null;
}

export interface RunHistoryFilter {
  projectIds?: string[] | null;
  teamIds?: string[] | null;
  plugins?: string[] | null;
  statuses?: RunStatus[] | null;
  createdAfter?: Date | null;
  createdBefore?: Date | null;
  metrics?: MetricThreshold[] | null;
  signature?: string | null;
}

export interface RunPage {
  edges: Array<{ cursor: string; node: Run }>;
  hasNextPage: boolean;
  endCursor: string | null;
}

export interface SeriesPoint {
  stageIndex: number;
  /** First and last step the point covers (equal when not downsampled). */
  step: number;
  stepEnd: number;
  min: number;
  mean: number;
  max: number;
  count: number;
}

export interface MetricSeries {
  name: string;
  totalPoints: number;
  downsampled: boolean;
  points: SeriesPoint[];
}

/** Final metrics a seed group reports mean ± std of. */
export const GROUP_METRICS = ['top1', 'params', 'macs', 'bytesOnDisk', 'latencyMs'] as const;

export interface MetricStat {
  metric: string;
  mean: number | null;
  std: number | null;
  n: number;
}

export interface SeedGroup {
  signature: string;
  signatureText: string;
  runCount: number;
  seeds: number[];
  runIds: string[];
  stats: MetricStat[];
}

/** Opaque keyset cursor: created_at in microseconds since the epoch and the run id. */
export function encodeCursor(createdMicros: string, id: string): string {
  return Buffer.from(`${createdMicros}:${id}`).toString('base64url');
}

export function decodeCursor(cursor: string): { createdMicros: string; id: string } {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const match = /^(-?\d{1,20}):([0-9a-f-]{36})$/i.exec(text);
  if (!match) throw new InvalidInputError(`invalid cursor ${JSON.stringify(cursor)}; pass an endCursor returned by runHistory`);
  return { createdMicros: match[1], id: parseId('cursor', match[2]) };
}

function checkList<T>(what: string, list: T[] | null | undefined): T[] | undefined {
  if (!list || list.length === 0) return undefined;
  if (list.length > FILTER_LIST_MAX) throw new InvalidInputError(`${what} may hold at most ${FILTER_LIST_MAX} entries (got ${list.length})`);
  return list;
}

/**
 * Run history across the projects a caller may read (its team's and those other teams share for
 * comparison), metric series downsampled in SQL, reruns and seed groups. Pipeline signatures are
 * stored on runs (`runs.signature`) by RunService when a run is created; `ensureSignatures` fills in
 * runs written without one (older rows), which costs one index probe when there are none.
 */
@injectable()
export class HistoryService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: PluginRegistry,
    private readonly runService: RunService,
    private readonly cache: VersionedCache,
  ) {
    this.runs = new RunLoader(dataSource);
  }

  private readonly runs: RunLoader;

  /** The stages a run's signature is made of. */
  stagesOf(run: Pick<Run, 'config' | 'pluginVersions'>): SignatureStage[] {
    return stagesOfRun(run.config, run.pluginVersions, (plugin) => (this.registry.has(plugin) ? this.registry.get(plugin).kind : undefined));
  }

  signatureOf(run: Pick<Run, 'config' | 'pluginVersions'>): PipelineSignature {
    return pipelineSignature(this.stagesOf(run));
  }

  /** Computes and stores missing signatures: of `runIds`, or of every run when omitted (cheap when none is missing). */
  async ensureSignatures(runIds?: string[]): Promise<void> {
    for (;;) {
      const rows: Array<{ id: string; config: Record<string, unknown>; plugin_versions: Record<string, string> | null }> = await this.dataSource.query(
        `SELECT id, config, plugin_versions FROM runs WHERE signature IS NULL ${runIds ? 'AND id = ANY($1::uuid[])' : ''} ORDER BY created_at LIMIT 1000`,
        runIds ? [runIds] : [],
      );
      if (rows.length === 0) return;
      const signatures = rows.map((r) => this.signatureOf({ config: r.config, pluginVersions: r.plugin_versions }));
      await this.dataSource.query(
        `UPDATE runs SET signature = v.signature, signature_text = v.text
           FROM unnest($1::uuid[], $2::text[], $3::text[]) AS v(id, signature, text)
          WHERE runs.id = v.id AND runs.signature IS NULL`,
        [rows.map((r) => r.id), signatures.map((s) => s.hash), signatures.map((s) => s.text)],
      );
      if (runIds || rows.length < 1000) return;
    }
  }

  /** A run the caller may read: its team's, or another team's in a project shared for comparison. */
  async visibleRun(caller: Caller, runId: string): Promise<Run> {
    const id = parseId('runId', runId);
    const rows: Array<{ team_id: string; shared: boolean }> = await this.dataSource.query(
      `SELECT p.team_id, p.shared_for_comparison AS shared FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = $1`,
      [id],
    );
    if (rows.length === 0) throw new NotFoundError(`no run with id ${runId}`);
    if (rows[0].team_id !== caller.team.id && !rows[0].shared) {
      throw new ForbiddenError(`run ${runId} belongs to another team's project that is not shared for comparison`);
    }
    return this.dataSource.getRepository(Run).findOneByOrFail({ id });
  }

  /** Runs matching `filter`, newest first, `first` at a time after the cursor `after`. */
  async runHistory(caller: Caller, filter: RunHistoryFilter, first = HISTORY_PAGE_DEFAULT, after?: string | null): Promise<RunPage> {
    if (!Number.isInteger(first) || first < 1 || first > HISTORY_PAGE_MAX) {
      throw new InvalidInputError(`first must be an integer from 1 to ${HISTORY_PAGE_MAX} (got ${first}); page with the cursor "after"`);
    }
    const params = new SqlParams();
    const where = [visibleProjectCondition('p', caller.team.id, params)];
    const projectIds = checkList('projectIds', filter.projectIds)?.map((id) => parseId('projectIds', id));
    if (projectIds) where.push(`r.project_id = ANY(${params.add(projectIds)}::uuid[])`);
    const teamIds = checkList('teamIds', filter.teamIds)?.map((id) => parseId('teamIds', id));
    if (teamIds) where.push(`p.team_id = ANY(${params.add(teamIds)}::uuid[])`);
    const statuses = checkList('statuses', filter.statuses);
    if (statuses) where.push(`r.status = ANY(${params.add(statuses)}::text[])`);
    const plugins = checkList('plugins', filter.plugins);
    if (plugins) where.push(`EXISTS (SELECT 1 FROM run_stages s WHERE s.run_id = r.id AND s.plugin = ANY(${params.add(plugins)}::text[]))`);
    if (filter.createdAfter) where.push(`r.created_at > ${params.add(checkDate('createdAfter', filter.createdAfter))}`);
    if (filter.createdBefore) where.push(`r.created_at < ${params.add(checkDate('createdBefore', filter.createdBefore))}`);
    if (filter.signature) {
      await this.ensureSignatures();
      where.push(`r.signature = ${params.add(filter.signature)}`);
    }
    for (const threshold of checkList('metrics', filter.metrics) ?? []) {
      if (threshold.min == null && threshold.max == null) throw new InvalidInputError(`metric threshold on "${threshold.name}" needs min or max`);
      const expr = metricExpression('r', threshold.name, params);
      if (threshold.min != null) where.push(`${expr} >= ${params.add(checkNumber(threshold.min))}`);
      if (threshold.max != null) where.push(`${expr} <= ${params.add(checkNumber(threshold.max))}`);
    }
    if (after) {
      const cursor = decodeCursor(after);
      const at = `(timestamptz 'epoch' + ${params.add(cursor.createdMicros)}::bigint * interval '1 microsecond')`;
      where.push(`(r.created_at, r.id) < (${at}, ${params.add(cursor.id)}::uuid)`);
    }
    // The page's ids are cached under the runs version; the runs themselves are read fresh (progress changes often).
    const rows: Array<{ id: string; micros: string }> = await this.cache.query(
      `SELECT r.id, (extract(epoch FROM r.created_at) * 1000000)::bigint::text AS micros
         FROM runs r JOIN projects p ON p.id = r.project_id
        WHERE ${where.join(' AND ')}
        ORDER BY r.created_at DESC, r.id DESC
        LIMIT ${first + 1}`,
      params.values,
      { version: caller.runsVersion },
    );
    const page = rows.slice(0, first);
    const runs = await this.runs.byIds(page.map((r) => r.id));
    const byId = new Map(runs.map((r) => [r.id, r]));
    const edges = page.flatMap((r) => {
      const node = byId.get(r.id);
      return node ? [{ cursor: encodeCursor(r.micros, r.id), node }] : [];
    });
    return { edges, hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null };
  }

  /**
   * A metric's points for a run, by stage then step. Above `maxPoints` they are grouped in SQL into
   * equal-count buckets per stage (at most maxPoints + stages − 1 buckets), each with min, mean, max.
   */
  async metricSeries(runId: string, name: string, stageIndex?: number | null, maxPoints = 500): Promise<MetricSeries> {
    if (!Number.isInteger(maxPoints) || maxPoints < 1 || maxPoints > SERIES_MAX_POINTS) {
      throw new InvalidInputError(`maxPoints must be an integer from 1 to ${SERIES_MAX_POINTS} (got ${maxPoints})`);
    }
    const params = new SqlParams();
    const where = [`run_id = ${params.add(runId)}`, `name = ${params.add(name)}`];
    if (stageIndex != null) where.push(`stage_index = ${params.add(stageIndex)}`);
    const buckets = params.add(maxPoints);
    const rows: Array<{ stage_index: number; step: number; step_end: number; vmin: number; vmean: number; vmax: number; cnt: number; total: number }> =
      await this.dataSource.query(
        `WITH pts AS (
           SELECT stage_index, step, value,
                  row_number() OVER (ORDER BY stage_index, step) - 1 AS i,
                  count(*) OVER () AS n
             FROM metric_points WHERE ${where.join(' AND ')}
         )
         SELECT stage_index, min(step) AS step, max(step) AS step_end, min(value) AS vmin, avg(value) AS vmean, max(value) AS vmax,
                count(*)::int AS cnt, max(n)::int AS total
           FROM pts
          GROUP BY stage_index, (i * ${buckets}::bigint) / n
          ORDER BY stage_index, min(step)`,
        params.values,
      );
    const totalPoints = rows[0]?.total ?? 0;
    return {
      name,
      totalPoints,
      downsampled: rows.length < totalPoints,
      points: rows.map((r) => ({ stageIndex: r.stage_index, step: r.step, stepEnd: r.step_end, min: r.vmin, mean: r.vmean, max: r.vmax, count: r.cnt })),
    };
  }

  /** Starts a new run of the run's pipeline with its seed (only in the caller's own team's projects). */
  async rerun(caller: Caller, runId: string): Promise<Run> {
    const run = await this.runService.run(caller, runId);
    return this.runService.startRun(caller, run.pipelineId, run.seed);
  }

  /**
   * Seed groups of a pipeline: for each signature its runs had, every succeeded run the caller may
   * read with that signature (any pipeline, any seed), with mean ± std of the final metrics.
   */
  async seedGroupsOfPipeline(caller: Caller, pipelineId: string): Promise<SeedGroup[]> {
    const pipeline = await this.dataSource.getRepository(Pipeline).findOneBy({ id: parseId('pipelineId', pipelineId) });
    if (!pipeline) throw new NotFoundError(`no pipeline with id ${pipelineId}`);
    const owner: Array<{ team_id: string; shared: boolean }> = await this.dataSource.query(
      `SELECT team_id, shared_for_comparison AS shared FROM projects WHERE id = $1`,
      [pipeline.projectId],
    );
    if (owner[0].team_id !== caller.team.id && !owner[0].shared) {
      throw new ForbiddenError(`pipeline ${pipelineId} belongs to another team's project that is not shared for comparison`);
    }
    await this.ensureSignatures();
    const signatures: Array<{ signature: string }> = await this.dataSource.query(
      `SELECT DISTINCT signature FROM runs WHERE pipeline_id = $1 AND signature IS NOT NULL`,
      [pipeline.id],
    );
    return this.seedGroups(caller, signatures.map((s) => s.signature));
  }

  /** Succeeded runs the caller may read, grouped by signature, with mean ± sample std of GROUP_METRICS; largest group first. */
  async seedGroups(caller: Caller, signatures: string[]): Promise<SeedGroup[]> {
    const groups = await Promise.all([...new Set(signatures)].map((signature) => this.seedGroup(caller, signature)));
    return groups.flatMap((g) => (g ? [g] : [])).sort((a, b) => b.runCount - a.runCount || a.signature.localeCompare(b.signature));
  }

  /**
   * One signature's group. Aggregates over every readable run with it, so the result is cached per
   * signature and team under the runs version (which any change to those runs bumps).
   */
  private async seedGroup(caller: Caller, signature: string): Promise<SeedGroup | undefined> {
    const params = new SqlParams();
    const sig = params.add(signature);
    const visible = visibleProjectCondition('p', caller.team.id, params);
    const statColumns = GROUP_METRICS.map((m, i) => {
      const expr = metricExpression('r', m, params);
      return `avg(${expr}) AS mean${i}, stddev_samp(${expr}) AS std${i}, count(${expr})::int AS n${i}`;
    }).join(', ');
    const rows: Array<Record<string, unknown> & { signature: string; text: string; runs: number; seeds: string[]; ids: string[] }> = await this.cache.query(
      // signature_text is read once, not aggregated, so the rest comes from the covering index runs_seed_group.
      `SELECT r.signature, (SELECT signature_text FROM runs WHERE signature = ${sig} LIMIT 1) AS text, count(*)::int AS runs,
              array_agg(DISTINCT r.seed::text) AS seeds, (array_agg(r.id ORDER BY r.created_at DESC))[1:${FILTER_LIST_MAX}] AS ids,
              ${statColumns}
         FROM runs r JOIN projects p ON p.id = r.project_id
        WHERE r.signature = ${sig} AND r.status = 'succeeded' AND ${visible}
        GROUP BY r.signature`,
      params.values,
      { version: caller.runsVersion, before: () => this.ensureSignatures() },
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      signature: row.signature,
      signatureText: row.text,
      runCount: row.runs,
      seeds: row.seeds.map(Number).sort((a, b) => a - b),
      runIds: row.ids,
      stats: GROUP_METRICS.map((metric, i) => ({
        metric,
        mean: row[`mean${i}`] == null ? null : Number(row[`mean${i}`]),
        std: row[`std${i}`] == null ? null : Number(row[`std${i}`]),
        n: row[`n${i}`] as number,
      })),
    };
  }
}

function checkDate(what: string, value: Date): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw new InvalidInputError(`${what} must be a date-time`);
  return value;
}

function checkNumber(value: number): number {
  if (!Number.isFinite(value)) throw new InvalidInputError(`metric thresholds must be finite numbers (got ${value})`);
  return value;
}
