#!/usr/bin/env node
import 'reflect-metadata';
import { Command } from 'commander';
import { startCondense, migrateOnly } from '../core/app/bootstrap';
import { loadConfig, type CondenseConfig } from '../core/config/config';
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
program.command('migrate').description('apply database migrations and exit').action(migrate);
program.command('run').argument('<pipeline.json>', 'pipeline file (see examples/pipeline.json)').description('run a pipeline from a file and print its results').action(run);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`condense: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
