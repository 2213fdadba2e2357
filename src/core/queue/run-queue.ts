import PgBoss from 'pg-boss';
import type { EntityManager } from 'typeorm';
import type { Logger } from '../logging/logger';

/** The pg-boss queue of runs to execute; a job carries only the run's id. */
export const RUN_QUEUE = 'condense-run';
/** pg-boss keeps its tables in this schema of Condense's database. */
export const QUEUE_SCHEMA = 'pgboss';

interface RunJob {
  runId: string;
}

/**
 * The Postgres-backed job queue (pg-boss, in the `pgboss` schema of the same database). A job is only
 * the signal "execute run X": the run's row is the truth about its state, and the worker claims it
 * there, so a duplicate or late job is harmless. A job's worker holds it while the run executes; a
 * worker that dies is detected by the run's heartbeat (see RunWorker), not by pg-boss' expiry, which
 * is set to its maximum because runs may be long.
 */
export class RunQueue {
  private workers: string[] = [];

  /** Use `RunQueue.start`. */
  constructor(
    private readonly boss: PgBoss,
    private readonly log: Logger,
  ) {}

  static async start(databaseUrl: string, log: Logger): Promise<RunQueue> {
    const boss = new PgBoss({ connectionString: databaseUrl, schema: QUEUE_SCHEMA, max: 3, application_name: 'condense-queue', schedule: false });
    boss.on('error', (error: unknown) => log.warn({ err: error }, 'job queue error'));
    await boss.start();
    await boss.createQueue(RUN_QUEUE, { name: RUN_QUEUE, retryLimit: 0, expireInSeconds: 23 * 3600 });
    return new RunQueue(boss, log);
  }

  /**
   * Queues a run. With `manager` (a TypeORM transaction) the job is inserted in that transaction, so the
   * run row and its job are committed together or not at all.
   */
  async enqueue(runId: string, manager?: EntityManager): Promise<void> {
    const runner = manager?.queryRunner;
    const db = runner
      ? {
          executeSql: async (text: string, values: unknown[]) => {
            const result = await runner.query(text, values, true);
            return { rows: (result.records ?? []) as unknown[] };
          },
        }
      : undefined;
    const data: RunJob = { runId };
    await this.boss.send(RUN_QUEUE, data, db ? { db } : {});
  }

  /** Starts `concurrency` polling loops; each executes one run at a time through `handler`. */
  async work(concurrency: number, handler: (runId: string) => Promise<void>): Promise<void> {
    for (let i = 0; i < concurrency; i++) {
      const id = await this.boss.work<RunJob>(RUN_QUEUE, { batchSize: 1, pollingIntervalSeconds: 1 }, async (jobs) => {
        for (const job of jobs) {
          try {
            await handler(job.data.runId);
          } catch (error) {
            // The run records its own failure; a job failure here would only add a retry we do not want.
            this.log.error({ err: error, run: job.data.runId }, 'run job failed');
          }
        }
      });
      this.workers.push(id);
    }
  }

  /** Stops fetching new jobs (running handlers finish on their own). */
  async stopWorking(): Promise<void> {
    for (const id of this.workers) await this.boss.offWork({ id });
    this.workers = [];
  }

  async stop(): Promise<void> {
    await this.stopWorking();
    await this.boss.stop({ graceful: true, wait: true, timeout: 10_000 });
  }
}
