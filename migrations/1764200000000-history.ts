import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Final metrics the history, comparison and leaderboard queries filter and sort on, as real columns. */
const METRIC_COLUMNS: Array<[column: string, key: string]> = [
  ['metric_top1', 'top1'],
  ['metric_params', 'params'],
  ['metric_macs', 'macs'],
  ['metric_bytes', 'bytesOnDisk'],
  ['metric_latency_ms', 'latencyMs'],
];

/**
 * Run history and comparison: a pipeline signature per run (computed by the history service on
 * read for runs that have none), numeric copies of the final metrics that queries rank by
 * (copied from `final_metrics` by a trigger, so writers need not know them), the stage an artifact came
 * from, and the indexes of keyset pagination, seed groups and leaderboards.
 */
export class History1764200000000 implements MigrationInterface {
  name = 'History1764200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE runs ADD COLUMN signature text, ADD COLUMN signature_text text`);
    // Filled by a trigger rather than declared GENERATED: TypeORM's schema tools expect generated columns to be
    // described in a typeorm_metadata table of their own, and writers need not know these columns either way.
    for (const [column] of METRIC_COLUMNS) await q.query(`ALTER TABLE runs ADD COLUMN ${column} double precision`);
    const assignments = METRIC_COLUMNS.map(
      // jsonb_typeof guards the cast: a non-numeric value gives NULL instead of failing the write.
      ([column, key]) => `NEW.${column} := CASE WHEN jsonb_typeof(NEW.final_metrics -> '${key}') = 'number' THEN (NEW.final_metrics ->> '${key}')::double precision END;`,
    ).join('\n        ');
    await q.query(`
      CREATE FUNCTION runs_copy_final_metrics() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        ${assignments}
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER runs_copy_final_metrics BEFORE INSERT OR UPDATE OF final_metrics ON runs FOR EACH ROW EXECUTE FUNCTION runs_copy_final_metrics()`);
    await q.query(`CREATE INDEX runs_created_id ON runs (created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX runs_project_created_id ON runs (project_id, created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX runs_signature ON runs (signature, created_at DESC) WHERE signature IS NOT NULL`);
    await q.query(`CREATE INDEX runs_signature_missing ON runs (created_at) WHERE signature IS NULL`);
    await q.query(`
      CREATE INDEX runs_leaderboard ON runs (project_id)
        INCLUDE (metric_top1, metric_params, metric_macs, metric_bytes, metric_latency_ms, created_at)
        WHERE status = 'succeeded'`);
    await q.query(`ALTER TABLE artifacts ADD COLUMN stage_index integer CHECK (stage_index >= 0)`);
    await q.query(`CREATE INDEX artifacts_run_kind ON artifacts (run_id, kind) WHERE run_id IS NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX artifacts_run_kind`);
    await q.query(`ALTER TABLE artifacts DROP COLUMN stage_index`);
    await q.query(`DROP INDEX runs_leaderboard`);
    await q.query(`DROP INDEX runs_signature_missing`);
    await q.query(`DROP INDEX runs_signature`);
    await q.query(`DROP INDEX runs_project_created_id`);
    await q.query(`DROP INDEX runs_created_id`);
    await q.query(`DROP TRIGGER runs_copy_final_metrics ON runs`);
    await q.query(`DROP FUNCTION runs_copy_final_metrics()`);
    for (const [column] of METRIC_COLUMNS) await q.query(`ALTER TABLE runs DROP COLUMN ${column}`);
    await q.query(`ALTER TABLE runs DROP COLUMN signature_text, DROP COLUMN signature`);
  }
}
