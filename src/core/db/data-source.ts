import { DataSource } from 'typeorm';
import type { Logger } from '../logging/logger';
import { ENTITIES, MIGRATIONS } from './entities';

/** Arbitrary but fixed key of the advisory lock that serialises migrations across processes. */
const MIGRATION_LOCK_KEY = 7_364_201_993;

export function createDataSource(url: string): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    logging: false,
    // Small pool: one server process, a handful of concurrent requests.
    extra: { max: 10 },
  });
}

/**
 * Runs pending migrations while holding a Postgres advisory lock, so that two servers starting at
 * once against the same database apply each migration exactly once. Returns the names applied.
 */
export async function runMigrationsLocked(dataSource: DataSource, log?: Logger): Promise<string[]> {
  return withAdvisoryLock(dataSource, async () => {
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    for (const m of applied) log?.info({ migration: m.name }, 'applied migration');
    return applied.map((m) => m.name);
  });
}

/** Reverts every applied migration, newest first (for tests and `migrate --down`). */
export async function revertAllMigrations(dataSource: DataSource): Promise<number> {
  return withAdvisoryLock(dataSource, async () => {
    let reverted = 0;
    while (await hasAppliedMigrations(dataSource)) {
      await dataSource.undoLastMigration({ transaction: 'each' });
      reverted++;
    }
    return reverted;
  });
}

async function hasAppliedMigrations(dataSource: DataSource): Promise<boolean> {
  const rows: Array<{ exists: boolean }> = await dataSource.query(`SELECT to_regclass('migrations') IS NOT NULL AS exists`);
  if (!rows[0].exists) return false;
  const count: Array<{ n: number }> = await dataSource.query(`SELECT count(*)::int AS n FROM migrations`);
  return count[0].n > 0;
}

/**
 * Holds a session-level advisory lock on one dedicated connection while `work` runs. TypeORM runs
 * the migrations on other pooled connections; the lock only needs to be held by someone for the duration.
 */
async function withAdvisoryLock<T>(dataSource: DataSource, work: () => Promise<T>): Promise<T> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      return await work();
    } finally {
      await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await runner.release();
  }
}
