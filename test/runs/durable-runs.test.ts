/**
 * Durable runs with real processes (issue 6, items 1–4). The API server runs in this process with no
 * worker of its own (CONDENSE_WORKER_CONCURRENCY 0); runs execute in `condense worker` child processes
 * compiled from the sources, on the same database and artifact directory:
 * - a worker is SIGKILLed after the kd stage's first checkpoint; a second worker takes the run over and
 *   finishes it, without re-running stage 1 and continuing kd from its checkpoint, with no metric point
 *   lost or duplicated;
 * - cancelRun in the API process stops a run executing in the worker process within seconds, and records
 *   cancelled a run whose worker was SIGKILLed when no worker is left to do it;
 * - progress reaches a graphql-ws subscriber of the API server from the worker, through Postgres NOTIFY;
 *   another team's subscription is refused.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { createClient } from 'graphql-ws';
import { Client } from 'pg';
import WebSocket from 'ws';
import { startCondense, type CondenseApp } from '../../src/core/app/bootstrap';
import { ADMIN_TOKEN_FILE } from '../../src/core/auth/auth.service';
import type { CondenseConfig } from '../../src/core/config/config';
import { silentLogger } from '../../src/core/logging/logger';
import { createTestDatabase, type TestDatabase } from '../support/database';

const REPO = path.resolve(__dirname, '../..');
const WORK = path.join(REPO, '.condense-test', `durable-${process.pid}`);
const BUILD = path.join(WORK, 'build');
const STALE_SECONDS = 3;

let database: TestDatabase;
let dataDir: string;
let app: CondenseApp;
let pg: Client;
let adminToken: string;
let teamToken: string;
let otherToken: string;
let projectId: string;
let teacherId: string;
const workers: ChildProcess[] = [];

/** Compiles src/ and migrations/ file by file (the project is isolatedModules, as ts-jest runs it). */
function buildSources(): void {
  const config = ts.readConfigFile(path.join(REPO, 'tsconfig.json'), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, REPO);
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
  for (const file of [...walk(path.join(REPO, 'src')), ...walk(path.join(REPO, 'migrations'))]) {
    const { outputText } = ts.transpileModule(fs.readFileSync(file, 'utf8'), { compilerOptions: { ...options, sourceMap: false }, fileName: file });
    const target = path.join(BUILD, path.relative(REPO, file)).replace(/\.ts$/, '.js');
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, outputText);
  }
}

function startWorker(name: string): ChildProcess {
  const log = fs.openSync(path.join(WORK, `${name}.log`), 'a');
  const child = spawn(process.execPath, [path.join(BUILD, 'src/cli/main.js'), 'worker'], {
    cwd: REPO,
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      CONDENSE_DATA_DIR: dataDir,
      CONDENSE_BACKEND: 'wasm',
      CONDENSE_WORKER_CONCURRENCY: '1',
      CONDENSE_RUN_STALE_SECONDS: String(STALE_SECONDS),
      CONDENSE_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', log, log],
  });
  workers.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

async function gql<T = any>(query: string, variables: Record<string, unknown> = {}, token = teamToken): Promise<T> {
  const response = await fetch(app.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (body.errors || !body.data) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; worker logs in ${WORK}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function createPipeline(name: string, kd: Record<string, unknown>): Promise<string> {
  const created = await gql(`mutation($input: CreatePipelineInput!) { createPipeline(input: $input) { id } }`, {
    input: { projectId, name, teacherModelId: teacherId, stages: [{ plugin: 'noise', config: { count: 256 } }, { plugin: 'kd', config: kd }] },
  });
  return created.createPipeline.id;
}

async function startRun(pipelineId: string, checkpointEvery?: number): Promise<string> {
  const started = await gql(`mutation($id: ID!, $c: Int) { startRun(pipelineId: $id, seed: 5, checkpointEvery: $c) { id status } }`, { id: pipelineId, c: checkpointEvery ?? null });
  expect(started.startRun.status).toBe('queued');
  return started.startRun.id;
}

const stageRow = async (runId: string, index: number) =>
  (await pg.query(`SELECT status, started_at, finished_at, output_artifact_id, resumed_from_step FROM run_stages WHERE run_id = $1 AND index = $2`, [runId, index])).rows[0];

beforeAll(async () => {
  fs.rmSync(WORK, { recursive: true, force: true });
  fs.mkdirSync(WORK, { recursive: true });
  buildSources();
  database = await createTestDatabase();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-durable-'));
  const config: CondenseConfig = {
    port: 0,
    dataDir,
    databaseUrl: database.url,
    backend: 'wasm',
    embeddedPostgresPort: 1,
    logLevel: 'silent',
    workerConcurrency: 0,
    runStaleSeconds: STALE_SECONDS,
  };
  app = await startCondense(config, silentLogger);
  adminToken = fs.readFileSync(path.join(dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
  pg = new Client({ connectionString: database.url });
  await pg.connect();
  teamToken = (await gql(`mutation { createTeam(name: "durable") { adminToken { token } } }`, {}, adminToken)).createTeam.adminToken.token;
  otherToken = (await gql(`mutation { createTeam(name: "others") { adminToken { token } } }`, {}, adminToken)).createTeam.adminToken.token;
  projectId = (await gql(`mutation { createProject(name: "durable-runs") { id } }`)).createProject.id;
  for (const plugin of ['noise', 'kd']) {
    await gql(`mutation($p: ID!, $n: String!) { setPluginEnabled(projectId: $p, plugin: $n, enabled: true) { enabled } }`, { p: projectId, n: plugin });
  }
  // The teacher's quality does not matter here: an untrained LeNet-5-BN keeps the test fast.
  const teacher = await gql(`mutation($p: ID!) { createZooModel(projectId: $p, name: "teacher", spec: { architecture: "lenet5-bn", width: 0.5, inputShape: [28, 28, 1], numClasses: 10 }, seed: 1) { id } }`, { p: projectId });
  teacherId = teacher.createZooModel.id;
}, 120_000);

afterAll(async () => {
  for (const child of workers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(workers.map(exited));
  await pg?.end();
  await app?.stop();
  await database?.drop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  fs.rmSync(WORK, { recursive: true, force: true });
});

test('a queued run waits for a worker: the API process executes nothing itself', async () => {
  const runId = await startRun(await createPipeline('waits', { epochs: 1, batchSize: 32 }));
  await new Promise((r) => setTimeout(r, 1500));
  const row = (await pg.query(`SELECT status, worker_id FROM runs WHERE id = $1`, [runId])).rows[0];
  expect(row).toEqual({ status: 'queued', worker_id: null });
  // A queued run is cancelled at once, without a worker.
  const cancelled = await gql(`mutation($id: ID!) { cancelRun(id: $id) { status errorCode stages { status } } }`, { id: runId });
  expect(cancelled.cancelRun.status).toBe('cancelled');
  expect(cancelled.cancelRun.stages.map((s: any) => s.status)).toEqual(['skipped', 'skipped']);
});

test('a worker killed with SIGKILL mid-stage: another worker resumes the run from its last stage and checkpoint', async () => {
  // 256 images / batch 32 = 8 steps per epoch; 30 epochs = 240 kd steps, a checkpoint every 20.
  const runId = await startRun(await createPipeline('killed', { epochs: 30, batchSize: 32 }), 20);
  const first = startWorker('worker-1');
  await until('the first kd checkpoint', async () => (await pg.query(`SELECT step FROM run_checkpoints WHERE run_id = $1 AND stage_index = 1`, [runId])).rows[0], 180_000, 50);
  first.kill('SIGKILL');
  await exited(first);
  const killedAt = new Date();
  const checkpointStep: number = (await pg.query(`SELECT step FROM run_checkpoints WHERE run_id = $1 AND stage_index = 1`, [runId])).rows[0].step;
  expect(checkpointStep % 20).toBe(0);
  const before = (await pg.query(`SELECT status, attempts FROM runs WHERE id = $1`, [runId])).rows[0];
  expect(before).toEqual({ status: 'running', attempts: 1 });
  const synthesisBefore = await stageRow(runId, 0);
  expect(synthesisBefore.status).toBe('succeeded');
  const kdTotal = 240;
  const pointsBefore = (await pg.query(`SELECT step FROM metric_points WHERE run_id = $1 AND stage_index = 1 AND name = 'loss' ORDER BY step`, [runId])).rows.map((r) => r.step);
  // Every point up to the checkpoint was written before the checkpoint was stored.
  expect(pointsBefore.slice(0, checkpointStep)).toEqual(Array.from({ length: checkpointStep }, (_, i) => i + 1));

  startWorker('worker-2');
  const end = await until(
    'the resumed run to end',
    async () => {
      const row = (await pg.query(`SELECT status, attempts, error, final_model_id FROM runs WHERE id = $1`, [runId])).rows[0];
      return ['succeeded', 'failed', 'cancelled'].includes(row.status) && row;
    },
    240_000,
    250,
  );
  expect(end.error).toBeNull();
  expect(end.status).toBe('succeeded');
  expect(end.attempts).toBe(2);
  expect(end.final_model_id).toBeTruthy();

  // Stage 1 was not run again: same start, end and artifact.
  const synthesisAfter = await stageRow(runId, 0);
  expect(synthesisAfter).toEqual(synthesisBefore);
  // kd continued after its checkpoint, not from step 0.
  const kd = await stageRow(runId, 1);
  expect(kd.status).toBe('succeeded');
  expect(kd.resumed_from_step).toBe(checkpointStep);

  // Loss points: exactly one per step 1..240; those up to the checkpoint are the ones written before the kill.
  const points = (await pg.query(`SELECT step, created_at FROM metric_points WHERE run_id = $1 AND stage_index = 1 AND name = 'loss' ORDER BY step`, [runId])).rows;
  expect(points.map((p) => p.step)).toEqual(Array.from({ length: kdTotal }, (_, i) => i + 1));
  for (const p of points.slice(0, checkpointStep)) expect(p.created_at.getTime()).toBeLessThanOrEqual(killedAt.getTime());
  for (const p of points.slice(checkpointStep)) expect(p.created_at.getTime()).toBeGreaterThan(killedAt.getTime());
  // The finished run keeps no checkpoint.
  expect((await pg.query(`SELECT count(*)::int AS n FROM run_checkpoints WHERE run_id = $1`, [runId])).rows[0].n).toBe(0);
}, 480_000);

test('a worker stopped with SIGTERM puts its run back in the queue, and the next worker finishes it', async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await Promise.all(workers.map(exited));
  const runId = await startRun(await createPipeline('stopped', { epochs: 30, batchSize: 32 }), 20);
  const worker = startWorker('worker-stopped');
  await until('a kd checkpoint', async () => (await pg.query(`SELECT step FROM run_checkpoints WHERE run_id = $1 AND stage_index = 1`, [runId])).rows[0], 180_000, 50);
  worker.kill('SIGTERM');
  await exited(worker);
  expect(worker.exitCode).toBe(0);
  const stopped = (await pg.query(`SELECT status, worker_id, attempts FROM runs WHERE id = $1`, [runId])).rows[0];
  expect(stopped).toEqual({ status: 'queued', worker_id: null, attempts: 1 });
  expect((await stageRow(runId, 1)).status).toBe('queued');

  startWorker('worker-after-stop');
  const end = await until(
    'the run to end',
    async () => {
      const row = (await pg.query(`SELECT status, attempts FROM runs WHERE id = $1`, [runId])).rows[0];
      return ['succeeded', 'failed', 'cancelled'].includes(row.status) && row;
    },
    240_000,
    250,
  );
  expect(end).toEqual({ status: 'succeeded', attempts: 2 });
  expect((await stageRow(runId, 1)).resumed_from_step).toBeGreaterThan(0);
}, 480_000);

test('a queued run whose job was lost is queued again by a worker\'s reaper', async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await Promise.all(workers.map(exited));
  const runId = await startRun(await createPipeline('lost-job', { epochs: 1, batchSize: 32 }));
  // As if the job had been fetched by a process that died before claiming the run, long ago.
  const deleted = await pg.query(`DELETE FROM pgboss.job WHERE data->>'runId' = $1`, [runId]);
  expect(deleted.rowCount).toBe(1);
  await pg.query(`UPDATE runs SET created_at = now() - interval '1 hour' WHERE id = $1`, [runId]);
  startWorker('worker-reaper');
  const end = await until(
    'the run to end',
    async () => {
      const row = (await pg.query(`SELECT status FROM runs WHERE id = $1`, [runId])).rows[0];
      return ['succeeded', 'failed', 'cancelled'].includes(row.status) && row;
    },
    180_000,
    250,
  );
  expect(end.status).toBe('succeeded');
}, 240_000);

test('cancelRun in the API process stops a run executing in a worker process within seconds, keeping stage 1', async () => {
  const runId = await startRun(await createPipeline('cancelled', { epochs: 500, batchSize: 32 }));
  if (!workers.some((w) => w.exitCode === null && w.signalCode === null)) startWorker('worker-3');
  await until('kd to run', async () => (await stageRow(runId, 1)).status === 'running', 120_000);
  const asked = Date.now();
  const { cancelRun } = await gql(`mutation($id: ID!) { cancelRun(id: $id) { status errorCode stages { status outputArtifactId } } }`, { id: runId });
  expect(Date.now() - asked).toBeLessThan(10_000);
  expect(cancelRun.status).toBe('cancelled');
  expect(cancelRun.errorCode).toBe('CANCELLED');
  expect(cancelRun.stages[0].status).toBe('succeeded');
  expect(cancelRun.stages[0].outputArtifactId).toBeTruthy();
  expect(cancelRun.stages[1].status).toBe('cancelled');
  const artifact = (await pg.query(`SELECT kind, storage_path FROM artifacts WHERE id = $1`, [cancelRun.stages[0].outputArtifactId])).rows[0];
  expect(artifact.kind).toBe('synthetic-dataset');
  expect(fs.existsSync(path.join(dataDir, 'artifacts', artifact.storage_path))).toBe(true);
}, 240_000);

test('cancelRun of a run whose worker was SIGKILLed records it cancelled with no worker left, keeping stage 1', async () => {
  const alive = () => workers.filter((w) => w.exitCode === null && w.signalCode === null);
  for (const w of alive()) w.kill('SIGKILL');
  await Promise.all(workers.map(exited));
  const runId = await startRun(await createPipeline('orphaned', { epochs: 500, batchSize: 32 }));
  const worker = startWorker('worker-orphaning');
  await until('kd to run', async () => (await stageRow(runId, 1)).status === 'running', 120_000);
  worker.kill('SIGKILL');
  await exited(worker);
  expect(alive()).toHaveLength(0);
  const asked = Date.now();
  const { cancelRun } = await gql(`mutation($id: ID!) { cancelRun(id: $id) { status errorCode error stages { status outputArtifactId } } }`, { id: runId });
  // Recorded once the dead worker's heartbeat is STALE_SECONDS old, well within cancelRun's wait.
  expect(Date.now() - asked).toBeLessThan(10_000);
  expect(cancelRun.status).toBe('cancelled');
  expect(cancelRun.errorCode).toBe('CANCELLED');
  expect(cancelRun.error).toMatch(/worker had stopped/);
  expect(cancelRun.stages.map((s: any) => s.status)).toEqual(['succeeded', 'cancelled']);
  expect(cancelRun.stages[0].outputArtifactId).toBeTruthy();
  const row = (await pg.query(`SELECT worker_id, finished_at, progress->>'status' AS progress_status FROM runs WHERE id = $1`, [runId])).rows[0];
  expect(row.worker_id).toBeNull();
  expect(row.finished_at).not.toBeNull();
  expect(row.progress_status).toBe('cancelled');
  // A worker started later does not pick it up again.
  startWorker('worker-after-orphan');
  await new Promise((r) => setTimeout(r, 2 * STALE_SECONDS * 1000));
  expect((await pg.query(`SELECT status FROM runs WHERE id = $1`, [runId])).rows[0].status).toBe('cancelled');
}, 240_000);

describe('progress', () => {
  const SUBSCRIPTION = `subscription($id: ID!) { runProgress(runId: $id) { runId status stageIndex plugin step total elapsedMs etaMs metrics updatedAt } }`;
  const client = (token: string | null) =>
    createClient({ url: app.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: token ? { authorization: `Bearer ${token}` } : {}, retryAttempts: 0, lazy: true });

  test('a graphql-ws subscriber of the API server receives the progress a worker process reports, up to the run end', async () => {
    const runId = await startRun(await createPipeline('watched', { epochs: 6, batchSize: 32 }));
    if (!workers.some((w) => w.exitCode === null && w.signalCode === null)) startWorker('worker-4');
    const ws = client(teamToken);
    const events: any[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        ws.subscribe({ query: SUBSCRIPTION, variables: { id: runId } }, { next: (message) => events.push(message.data?.runProgress ?? message), error: reject, complete: resolve });
      });
    } finally {
      await ws.dispose();
    }
    expect(events.length).toBeGreaterThan(2);
    expect(events.every((e) => e.runId === runId)).toBe(true);
    const last = events[events.length - 1];
    expect(last.status).toBe('succeeded');
    const kd = events.filter((e) => e.stageIndex === 1 && e.step > 0);
    expect(kd.length).toBeGreaterThan(1);
    expect(kd.every((e) => e.plugin === 'kd' && e.total === 48)).toBe(true);
    for (let i = 1; i < kd.length; i++) {
      expect(kd[i].step).toBeGreaterThanOrEqual(kd[i - 1].step);
      expect(kd[i].elapsedMs).toBeGreaterThanOrEqual(kd[i - 1].elapsedMs);
    }
    expect(kd.every((e) => Number.isFinite(e.metrics.loss))).toBe(true);
    expect(kd.some((e) => e.etaMs !== null && e.etaMs >= 0)).toBe(true);

    // The same summary is stored with the run.
    const { run } = await gql(`query($id: ID!) { run(id: $id) { status progress { status stageIndex step total metrics } } }`, { id: runId });
    expect(run.status).toBe('succeeded');
    expect(run.progress).toMatchObject({ status: 'succeeded', stageIndex: 1, step: 48, total: 48 });
    expect(Number.isFinite(run.progress.metrics.loss)).toBe(true);
  }, 240_000);

  test("another team's subscription is refused, and so is a connection without a token", async () => {
    const runId = await startRun(await createPipeline('private', { epochs: 1, batchSize: 32 }));
    const runs = [{ id: runId }];
    const other = client(otherToken);
    try {
      const error = await new Promise<any>((resolve) => {
        // graphql-ws delivers a refused subscription as one result with errors (then completes).
        other.subscribe({ query: SUBSCRIPTION, variables: { id: runs[0].id } }, { next: (m) => resolve(m.errors ?? new Error('got an event')), error: resolve, complete: () => resolve(new Error('completed')) });
      });
      expect(Array.isArray(error)).toBe(true);
      expect(['NOT_FOUND', 'FORBIDDEN']).toContain(error[0].extensions?.code);
      expect(error[0].message).toMatch(/another team|no run with id/);
    } finally {
      await other.dispose();
    }
    const anonymous = client(null);
    try {
      const closed = await new Promise<any>((resolve) => {
        anonymous.subscribe({ query: SUBSCRIPTION, variables: { id: runs[0].id } }, { next: () => resolve('event'), error: resolve, complete: () => resolve('complete') });
      });
      expect(closed.code).toBe(4403);
    } finally {
      await anonymous.dispose();
    }
    await gql(`mutation($id: ID!) { cancelRun(id: $id) { status } }`, { id: runId });
  });
});
