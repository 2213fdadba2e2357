import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A version number for what the history, comparison and leaderboard queries read: which runs exist,
 * their status, final metrics, signature and project, and which projects a team may read. Every
 * statement that changes any of these bumps `change_counters.version` of 'runs' in its own
 * transaction, so a reader that sees version v after a commit never sees data older than v. Server
 * processes cache query results under the version they read first (src/core/history/versioned-cache.ts).
 * Heartbeats and progress reports (other columns) do not bump it.
 *
 * Also covering indexes for what a cache miss computes, so it reads an index instead of the runs
 * table (whose rows carry configs and progress): the leaderboard's candidates (the old
 * runs_leaderboard lacked the run id, so it could not answer alone) and a signature's seed group.
 */
export class ChangeCounters1764300000000 implements MigrationInterface {
  name = 'ChangeCounters1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE change_counters (name text PRIMARY KEY, version bigint NOT NULL DEFAULT 0)`);
    await q.query(`INSERT INTO change_counters (name, version) VALUES ('runs', 0)`);
    await q.query(`
      CREATE FUNCTION change_counters_bump_runs() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE change_counters SET version = version + 1 WHERE name = 'runs';
        RETURN NULL;
      END $$`);
    // Inserts and deletes: once per statement (a bulk insert of 100,000 runs bumps once). Updates: per row, and only
    // when a column the queries read really changed; a statement-level update trigger would fire for the reaper's and
    // heartbeat's statements even when they touch no row.
    await q.query(`CREATE TRIGGER runs_bump_version AFTER INSERT OR DELETE OR TRUNCATE ON runs FOR EACH STATEMENT EXECUTE FUNCTION change_counters_bump_runs()`);
    const changed = (columns: string[]) => columns.map((c) => `OLD.${c} IS DISTINCT FROM NEW.${c}`).join(' OR ');
    await q.query(`
      CREATE TRIGGER runs_bump_version_on_update AFTER UPDATE ON runs FOR EACH ROW
        WHEN (${changed(['status', 'final_metrics', 'signature', 'project_id', 'pipeline_id', 'created_at', 'seed'])})
        EXECUTE FUNCTION change_counters_bump_runs()`);
    await q.query(`CREATE TRIGGER projects_bump_version AFTER INSERT OR DELETE OR TRUNCATE ON projects FOR EACH STATEMENT EXECUTE FUNCTION change_counters_bump_runs()`);
    await q.query(`
      CREATE TRIGGER projects_bump_version_on_update AFTER UPDATE ON projects FOR EACH ROW
        WHEN (${changed(['team_id', 'shared_for_comparison'])})
        EXECUTE FUNCTION change_counters_bump_runs()`);
    await q.query(`DROP INDEX runs_leaderboard`);
    await q.query(`
      CREATE INDEX runs_leaderboard_covering ON runs (project_id)
        INCLUDE (id, created_at, metric_top1, metric_params, metric_macs, metric_bytes, metric_latency_ms)
        WHERE status = 'succeeded'`);
    await q.query(`
      CREATE INDEX runs_seed_group ON runs (signature, created_at DESC)
        INCLUDE (id, project_id, seed, metric_top1, metric_params, metric_macs, metric_bytes, metric_latency_ms)
        WHERE status = 'succeeded'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX runs_seed_group`);
    await q.query(`DROP INDEX runs_leaderboard_covering`);
    await q.query(`
      CREATE INDEX runs_leaderboard ON runs (project_id)
        INCLUDE (metric_top1, metric_params, metric_macs, metric_bytes, metric_latency_ms, created_at)
        WHERE status = 'succeeded'`);
    await q.query(`DROP TRIGGER projects_bump_version_on_update ON projects`);
    await q.query(`DROP TRIGGER projects_bump_version ON projects`);
    await q.query(`DROP TRIGGER runs_bump_version_on_update ON runs`);
    await q.query(`DROP TRIGGER runs_bump_version ON runs`);
    await q.query(`DROP FUNCTION change_counters_bump_runs()`);
    await q.query(`DROP TABLE change_counters`);
  }
}
