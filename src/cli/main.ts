#!/usr/bin/env node
import 'reflect-metadata';
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { startCondense, migrateOnly } from '../core/app/bootstrap';
import { loadConfig, type CondenseConfig } from '../core/config/config';
import { EMBEDDED_DATABASE_NAME } from '../core/db/embedded-postgres';
import { createLogger, type Logger } from '../core/logging/logger';
import { readPipelineFile } from './pipeline-file';
import { runPipelineFile } from './run-command';

function setup(): { config: CondenseConfig; log: Logger } {
  const config = loadConfig();
  return { config, log: createLogger(config.logLevel) };
}

async function serve(): Promise<void> {
  const { config, log } = setup();
  const app = await startCondense(config, log);
  process.stdout.write(`Condense GraphQL API: ${app.url} (tensor backend: ${app.backend.name})\n`);
  if (app.adminTokenFile) process.stdout.write(`First start: the admin API token was written to ${app.adminTokenFile}\n`);
  stopOnSignals(app, log);
}

/**
 * Executes queued runs until stopped (SIGINT/SIGTERM put its runs back in the queue; a SIGKILL leaves
 * them to another worker's reaper). Points at the server's database and data directory: DATABASE_URL,
 * or the embedded database a `serve` on the same CONDENSE_DATA_DIR started.
 */
async function worker(options: { concurrency?: string }): Promise<void> {
  const { config, log } = setup();
  const concurrency = options.concurrency === undefined ? (config.workerConcurrency ?? 1) : Number(options.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new Error(`a worker executes 1 to 64 runs at once; got ${options.concurrency ?? config.workerConcurrency} (set --concurrency or CONDENSE_WORKER_CONCURRENCY)`);
  }
  const databaseUrl = config.databaseUrl ?? embeddedServerUrl(config);
  const app = await startCondense({ ...config, databaseUrl }, log, { http: false, workerConcurrency: concurrency });
  process.stdout.write(`Condense worker: executing up to ${concurrency} run(s) at once (tensor backend: ${app.backend.name})\n`);
  stopOnSignals(app, log);
}

/** The URL of the embedded database that `condense serve` runs for this data directory. */
function embeddedServerUrl(config: CondenseConfig): string {
  const passwordFile = path.join(config.dataDir, 'postgres-password');
  if (!fs.existsSync(passwordFile)) {
    throw new Error(`no DATABASE_URL and no embedded database in ${config.dataDir}: start \`condense serve\` there first, or set DATABASE_URL to the server's database`);
  }
  const password = fs.readFileSync(passwordFile, 'utf8').trim();
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${config.embeddedPostgresPort}/${EMBEDDED_DATABASE_NAME}`;
}

function stopOnSignals(app: { stop(): Promise<void> }, log: Logger): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    await app.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

async function migrate(): Promise<void> {
  const { config, log } = setup();
  const applied = await migrateOnly(config, log);
  process.stdout.write(applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'the database is up to date\n');
}

async function run(file: string): Promise<void> {
  const { config, log } = setup();
  const spec = readPipelineFile(file);
  // The run needs the database and the services, not the HTTP API.
  const app = await startCondense({ ...config, logLevel: config.logLevel }, log.child({}, { level: process.env.CONDENSE_LOG_LEVEL ?? 'warn' }), { http: false });
  try {
    const { run: finished, table } = await runPipelineFile(app.container, spec);
    process.stdout.write(`${table}\n`);
    process.exitCode = finished.status === 'succeeded' ? 0 : 1;
  } finally {
    await app.stop();
  }
}

const program = new Command();
program.name('condense').description('Condense: model compression pipelines behind a GraphQL API');
program.command('serve').description('start the GraphQL API (embedded PostgreSQL unless DATABASE_URL is set)').action(serve);
program
  .command('worker')
  .option('-c, --concurrency <n>', 'runs executed at once (default CONDENSE_WORKER_CONCURRENCY or 1)')
  .description('execute queued runs; point it at the server\'s database (DATABASE_URL) and artifact directory (CONDENSE_DATA_DIR)')
  .action(worker);
program.command('migrate').description('apply database migrations and exit').action(migrate);
program.command('run').argument('<pipeline.json>', 'pipeline file (see examples/pipeline.json)').description('run a pipeline from a file and print its results').action(run);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`condense: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
