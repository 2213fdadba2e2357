import { createDataSource, revertAllMigrations, runMigrationsLocked } from '../../src/core/db/data-source';
import { MIGRATIONS } from '../../src/core/db/entities';

const MIGRATION_NAMES = MIGRATIONS.map((m) => new m().name);
import { createTestDatabase, type TestDatabase } from '../support/database';

const TABLES = [
  'api_tokens',
  'artifacts',
  'change_counters',
  'datasets',
  'members',
  'metric_points',
  'models',
  'pipelines',
  'project_plugins',
  'projects',
  'run_checkpoints',
  'run_stages',
  'runs',
  'teams',
];

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function userTables(url: string): Promise<string[]> {
  const ds = await createDataSource(url).initialize();
  try {
    const rows: Array<{ table_name: string }> = await ds.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'migrations' ORDER BY table_name`,
    );
    return rows.map((r) => r.table_name);
  } finally {
    await ds.destroy();
  }
}

describe('migrations', () => {
  it('apply once even when two servers start at the same time', async () => {
    const a = await createDataSource(db.url).initialize();
    const b = await createDataSource(db.url).initialize();
    try {
      const [appliedA, appliedB] = await Promise.all([runMigrationsLocked(a), runMigrationsLocked(b)]);
      expect([...appliedA, ...appliedB]).toEqual(MIGRATION_NAMES);
    } finally {
      await a.destroy();
      await b.destroy();
    }
    expect(await userTables(db.url)).toEqual(TABLES);
  });

  it('describe the same tables and columns as the entity classes', async () => {
    const ds = await createDataSource(db.url).initialize();
    try {
      // TypeORM's schema builder lists the SQL it would run to make the database match the entities.
      const pending = await ds.driver.createSchemaBuilder().log();
      // Constraints and indexes are declared in the migration only, so TypeORM would drop them; every
      // other difference (a table, a column's name, type, nullability or default) is a mismatch.
      const mismatches = pending.upQueries.map((q) => q.query).filter((q) => !/^(DROP INDEX|ALTER TABLE "\w+" DROP CONSTRAINT)/.test(q));
      expect(mismatches).toEqual([]);
      expect(pending.upQueries.length).toBeGreaterThan(0); // the filter above saw the constraint drops
    } finally {
      await ds.destroy();
    }
  });

  it('revert completely and apply again', async () => {
    const ds = await createDataSource(db.url).initialize();
    try {
      expect(await revertAllMigrations(ds)).toBe(MIGRATIONS.length);
      expect(await userTables(db.url)).toEqual([]);
      expect(await runMigrationsLocked(ds)).toEqual(MIGRATION_NAMES);
      expect(await runMigrationsLocked(ds)).toEqual([]);
    } finally {
      await ds.destroy();
    }
    expect(await userTables(db.url)).toEqual(TABLES);
  });
});
