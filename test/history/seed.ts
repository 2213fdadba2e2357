import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';

export interface SeedRun {
  seed: number;
  status?: string;
  finalMetrics?: Record<string, unknown> | null;
  createdAt: Date;
}

export interface SeedPipeline {
  projectId: string;
  name: string;
  stages: Array<{ plugin: string; config: Record<string, unknown> }>;
  versions?: Record<string, string>;
  kinds: string[];
  runs: SeedRun[];
}

/**
 * Writes a pipeline (with a stand-in teacher model record) and finished runs straight into the
 * database, as RunService would have left them: history queries read only these rows.
 */
export async function seedPipeline(ds: DataSource, p: SeedPipeline): Promise<{ pipelineId: string; runIds: string[] }> {
  const hash = randomUUID().replace(/-/g, '') + randomUUID().replace(/-/g, '');
  const [artifact] = await ds.query(
    `INSERT INTO artifacts (kind, content_hash, bytes, storage_path, media_type) VALUES ('model', $1, 1, $2, 'inode/directory') RETURNING id`,
    [hash, `${hash.slice(0, 2)}/${hash}`],
  );
  const [model] = await ds.query(
    `INSERT INTO models (project_id, name, architecture, input_shape, num_classes, class_names, artifact_id, content_hash, params, macs, bytes, origin)
     VALUES ($1, $2, 'lenet5-bn', '{28,28,1}', 10, '{0,1,2,3,4,5,6,7,8,9}', $3, $4, 1000, 1000, 4000, 'zoo') RETURNING id`,
    [p.projectId, `teacher-${p.name}`, artifact.id, hash],
  );
  const [pipeline] = await ds.query(`INSERT INTO pipelines (project_id, name, stages, teacher_model_id) VALUES ($1, $2, $3, $4) RETURNING id`, [
    p.projectId,
    p.name,
    JSON.stringify(p.stages),
    model.id,
  ]);
  const versions = p.versions ?? Object.fromEntries(p.stages.map((s) => [s.plugin, '1.0.0']));
  const runIds: string[] = [];
  for (const run of p.runs) {
    const config = { name: p.name, teacherModelId: model.id, datasetId: null, stages: p.stages };
    const [row] = await ds.query(
      `INSERT INTO runs (pipeline_id, project_id, status, seed, plugin_versions, config, final_metrics, created_at, backend)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'wasm') RETURNING id`,
      [pipeline.id, p.projectId, run.status ?? 'succeeded', run.seed, JSON.stringify(versions), JSON.stringify(config), run.finalMetrics ? JSON.stringify(run.finalMetrics) : null, run.createdAt],
    );
    for (const [index, stage] of p.stages.entries()) {
      await ds.query(
        `INSERT INTO run_stages (run_id, index, plugin, kind, status, config, started_at, finished_at, wall_ms)
         VALUES ($1, $2, $3, $4, 'succeeded', $5, $6, $6::timestamptz + interval '1 minute', 60000)`,
        [row.id, index, stage.plugin, p.kinds[index], JSON.stringify(stage.config), new Date(run.createdAt.getTime() + index * 60_000)],
      );
    }
    runIds.push(row.id);
  }
  return { pipelineId: pipeline.id, runIds };
}
