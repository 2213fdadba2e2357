import { inject, injectable } from 'tsyringe';
import { DataSource } from 'typeorm';
import { CONFIG, LOGGER } from '../app/tokens';
import type { CondenseConfig } from '../config/config';
import type { Logger } from '../logging/logger';
import { QUEUE_SCHEMA, RUN_QUEUE, RunQueue } from '../queue/run-queue';
import { cancelAbandonedRuns, CANCEL_ABANDONED_SECONDS } from './abandoned-runs';
import { RunExecutor } from './run-executor';

/** How often a worker looks for runs whose worker died. */
const REAPER_INTERVAL_MS = 3000;

/**
 * Executes queued runs in this process (`serve` with CONDENSE_WORKER_CONCURRENCY > 0, `condense worker`).
 *
 * Dead workers are found by heartbeat, not by pg-boss job expiry: an executing worker refreshes
 * runs.heartbeat_at every second, and every worker's reaper puts back in the queue each `running` run
 * whose heartbeat is older than CONDENSE_RUN_STALE_SECONDS (and each `queued` run that has waited that
 * long without a pending job); such a run that was asked to cancel is recorded cancelled instead. pg-boss' own expiry would have to be longer than the longest run, so it
 * would notice a SIGKILL hours late; a heartbeat notices it within seconds whatever the run's length.
 */
@injectable()
export class RunWorker {
  private reaper: NodeJS.Timeout | undefined;
  private reaping: Promise<void> = Promise.resolve();
  private running = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: RunQueue,
    private readonly executor: RunExecutor,
    @inject(CONFIG) private readonly config: CondenseConfig,
    @inject(LOGGER) private readonly log: Logger,
  ) {}

  async start(concurrency: number): Promise<void> {
    this.running = true;
    this.executor.events.onRequeued = (runId) => this.queue.enqueue(runId);
    await this.reap();
    await this.queue.work(concurrency, (runId) => this.executor.executeQueued(runId));
    this.reaper = setInterval(() => {
      this.reaping = this.reaping.then(async () => {
        await this.reap();
      });
    }, REAPER_INTERVAL_MS);
    this.log.info({ worker: this.executor.workerId, concurrency }, 'run worker started');
  }

  /** Stops taking jobs, puts the runs executing here back in the queue, and returns when they are. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.reaper);
    await this.reaping;
    await this.queue.stopWorking();
    await this.executor.stopAll();
  }

  /** Re-queues runs left by dead workers (or records them cancelled, when a cancel was asked); returns how many were re-queued. */
  async reap(): Promise<number> {
    const stale = this.config.runStaleSeconds ?? 30;
    try {
      for (const id of await cancelAbandonedRuns(this.dataSource, Math.min(stale, CANCEL_ABANDONED_SECONDS))) {
        this.log.warn({ run: id }, 'run asked to cancel whose worker stopped recorded cancelled; completed stages are kept');
      }
      const [rows] = (await this.dataSource.query(
        `UPDATE runs SET status = 'queued', worker_id = NULL, heartbeat_at = now()
         WHERE (status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => $1)))
            OR (status = 'queued' AND COALESCE(heartbeat_at, created_at) < now() - make_interval(secs => $1)
                AND NOT EXISTS (SELECT 1 FROM ${QUEUE_SCHEMA}.job j
                                WHERE j.name = $2 AND j.data->>'runId' = runs.id::text AND j.state IN ('created', 'retry')))
         RETURNING id, worker_id`,
        [stale, RUN_QUEUE],
      )) as [Array<{ id: string }>, number];
      for (const row of rows) {
        await this.queue.enqueue(row.id);
        this.log.warn({ run: row.id }, 'run left by a stopped worker queued again; it resumes from its last completed stage and checkpoint');
      }
      return rows.length;
    } catch (error) {
      this.log.warn({ err: error }, 'could not look for abandoned runs');
      return 0;
    }
  }
}
