import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Durable runs: the worker that holds a run and its heartbeat, cancellation requests, a latest-progress
 * summary, per-stage resume points, in-stage checkpoints, and metric points unique per
 * (run, stage, name, step) so a resumed stage that reports a step again writes it once.
 */
export class DurableRuns1764100000000 implements MigrationInterface {
  name = 'DurableRuns1764100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE runs
        ADD COLUMN worker_id text,
        ADD COLUMN heartbeat_at timestamptz,
        ADD COLUMN cancel_requested_at timestamptz,
        ADD COLUMN attempts integer NOT NULL DEFAULT 0,
        ADD COLUMN progress jsonb`);
    await q.query(`CREATE INDEX runs_active_heartbeat ON runs (heartbeat_at) WHERE status IN ('queued', 'running')`);
    await q.query(`ALTER TABLE run_stages ADD COLUMN resumed_from_step integer`);
    await q.query(`
      CREATE TABLE run_checkpoints (
        run_id uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        stage_index integer NOT NULL,
        step integer NOT NULL CHECK (step >= 0),
        state bytea NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, stage_index)
      )`);
    // Keep one of any duplicates written before points were unique, then enforce it.
    await q.query(`
      DELETE FROM metric_points a USING metric_points b
      WHERE a.run_id = b.run_id AND a.stage_index = b.stage_index AND a.name = b.name AND a.step = b.step AND a.id > b.id`);
    await q.query(`CREATE UNIQUE INDEX metric_points_run_stage_name_step ON metric_points (run_id, stage_index, name, step)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX metric_points_run_stage_name_step`);
    await q.query(`DROP TABLE run_checkpoints`);
    await q.query(`ALTER TABLE run_stages DROP COLUMN resumed_from_step`);
    await q.query(`DROP INDEX runs_active_heartbeat`);
    await q.query(`
      ALTER TABLE runs
        DROP COLUMN worker_id,
        DROP COLUMN heartbeat_at,
        DROP COLUMN cancel_requested_at,
        DROP COLUMN attempts,
        DROP COLUMN progress`);
    // pg-boss keeps its own schema; drop it with the runs it queued.
    await q.query(`DROP SCHEMA IF EXISTS pgboss CASCADE`);
  }
}
