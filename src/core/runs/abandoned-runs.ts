import type { DataSource } from 'typeorm';
import { PROGRESS_CHANNEL } from './run-progress';

/**
 * A running run whose cancel was asked and whose worker has not beaten for this long has no worker
 * left to see the request: a live worker beats every second (HEARTBEAT_MS), also while it winds a
 * cancelled stage down, so ten missed beats mean it died (or stalls so long that its run would be
 * taken over anyway; it then finds itself replaced and stops without writing).
 */
export const CANCEL_ABANDONED_SECONDS = 10;

/**
 * Records as cancelled, in one statement, the running runs (all, or just `runId`) that were asked to
 * cancel and whose heartbeat is older than `staleSeconds`: the stage that was running is marked
 * cancelled and later ones skipped; completed stages keep their outputs. Subscribers get the final
 * progress event. Returns the ids of the runs cancelled.
 */
export async function cancelAbandonedRuns(dataSource: DataSource, staleSeconds: number, runId?: string): Promise<string[]> {
  const rows: Array<{ id: string }> = await dataSource.query(
    `WITH cancelled AS (
       UPDATE runs SET status = 'cancelled', error_code = 'CANCELLED', finished_at = now(), worker_id = NULL,
              error = 'cancelled by request; its worker had stopped, so the run was recorded cancelled without it (completed stages are kept)',
              progress = CASE WHEN progress IS NULL THEN NULL
                              ELSE progress || jsonb_build_object('status', 'cancelled', 'updatedAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) END
        WHERE status = 'running' AND cancel_requested_at IS NOT NULL
          AND (heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => $1))
          AND ($2::uuid IS NULL OR id = $2::uuid)
        RETURNING id, progress),
     stages AS (
       UPDATE run_stages s SET status = CASE WHEN s.status = 'running' THEN 'cancelled' ELSE 'skipped' END,
              finished_at = CASE WHEN s.status = 'running' THEN now() ELSE s.finished_at END
         FROM cancelled c
        WHERE s.run_id = c.id AND s.status IN ('queued', 'running'))
     SELECT id, CASE WHEN progress IS NULL THEN NULL ELSE pg_notify($3, progress::text) END AS notified FROM cancelled`,
    [staleSeconds, runId ?? null, PROGRESS_CHANNEL],
  );
  return rows.map((r) => r.id);
}
