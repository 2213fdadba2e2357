import 'reflect-metadata';
/**
 * bench:api — history, compare and leaderboard queries under 100 concurrent clients against a
 * Postgres holding BENCH_RUNS runs (default 100,000) and BENCH_POINTS metric points (default
 * 10,000,000), filled with generate_series in SQL. Embedded Postgres under a temp dir; loopback only.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { startCondense } from '../src/core/app/bootstrap';
import { ADMIN_TOKEN_FILE } from '../src/core/auth/auth.service';
import { silentLogger } from '../src/core/logging/logger';
import { writeBenchResults } from './support/results';
import { printTable } from './support/table';
import { HistoryService } from '../src/core/history/history.service';
import { ResponseCache } from '../src/graphql/response-cache';
import { apiBenchQueries, type ApiBenchJob, type ApiBenchKind } from './support/api-queries';

const RUNS = Number(process.env.BENCH_RUNS ?? 100_000);
const POINTS = Number(process.env.BENCH_POINTS ?? 10_000_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 100);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const WRITES_PER_SECOND = Number(process.env.BENCH_WRITES_PER_SECOND ?? 1);
/** Pause of each client between an answer and its next request: 0 saturates the server; 1,000 is people at dashboards. */
const THINK_MS = (process.env.BENCH_THINK_MS ?? '0,1000').split(',').map(Number);
const TEAMS = 10;
const PROJECTS_PER_TEAM = 5;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function main() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-bench-api-'));
  const app = await startCondense({ port: 0, dataDir, backend: 'cpu', embeddedPostgresPort: await freePort(), logLevel: 'silent' }, silentLogger);
  const token = fs.readFileSync(path.join(dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
  const ds = app.dataSource;
  try {
    const fillStarted = Date.now();
    const [team] = await ds.query(`SELECT team_id AS id FROM members LIMIT 1`);
    await ds.query(`INSERT INTO teams (name) SELECT 'team-' || t FROM generate_series(1, ${TEAMS - 1}) t`);
    await ds.query(
      `INSERT INTO projects (team_id, name, shared_for_comparison)
       SELECT t.id, 'project-' || p, p % 2 = 0 FROM teams t, generate_series(1, ${PROJECTS_PER_TEAM}) p`,
    );
    await ds.query(
      `INSERT INTO artifacts (kind, content_hash, bytes, storage_path, media_type)
       SELECT 'model', md5(p.id::text), 1, 'x/' || md5(p.id::text), 'inode/directory' FROM projects p`,
    );
    await ds.query(
      `INSERT INTO models (project_id, name, architecture, input_shape, num_classes, class_names, artifact_id, content_hash, params, macs, bytes, origin)
       SELECT p.id, 'teacher', 'lenet5-bn', '{28,28,1}', 10, '{0,1,2,3,4,5,6,7,8,9}', a.id, a.content_hash, 60000, 400000, 240000, 'zoo'
         FROM projects p JOIN artifacts a ON a.content_hash = md5(p.id::text)`,
    );
    await ds.query(
      `INSERT INTO pipelines (project_id, name, stages, teacher_model_id)
       SELECT m.project_id, 'kd-t' || t, jsonb_build_array(jsonb_build_object('plugin','noise','config',jsonb_build_object('count',512)),
              jsonb_build_object('plugin','kd','config',jsonb_build_object('epochs',1,'temperature',t))), m.id
         FROM models m, generate_series(1, 4) t`,
    );
    await ds.query(
      `INSERT INTO runs (pipeline_id, project_id, status, seed, plugin_versions, config, final_metrics, created_at, backend)
       SELECT pl.id, pl.project_id, CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END, i % 5,
              '{"noise":"1.0.0","kd":"1.0.0"}', jsonb_build_object('name', pl.name, 'stages', pl.stages),
              CASE WHEN i % 10 = 0 THEN NULL ELSE jsonb_build_object('top1', 0.5 + (i % 500) / 1000.0, 'params', 5000 + (i * 7919) % 60000,
                   'macs', 20000 + (i * 104729) % 400000, 'bytesOnDisk', 20000 + (i * 7919) % 240000, 'latencyMs', 0.2 + (i % 97) / 50.0,
                   'latencyBackend', 'wasm', 'latencyBatchSize', 1,
                   'stageWallMs', jsonb_build_array(jsonb_build_object('stage',0,'plugin','noise','wallMs',100), jsonb_build_object('stage',1,'plugin','kd','wallMs',2000))) END,
              now() - (i || ' seconds')::interval, 'wasm'
         FROM generate_series(1::bigint, ${RUNS}) i
         JOIN LATERAL (SELECT id, project_id, name, stages FROM pipelines ORDER BY id OFFSET (i % (SELECT count(*) FROM pipelines)) LIMIT 1) pl ON true`,
    );
    const perRun = Math.max(1, Math.floor(POINTS / RUNS));
    await ds.query(
      `INSERT INTO metric_points (run_id, stage_index, step, name, value)
       SELECT r.id, 1, s, 'loss', 2.0 / (1 + s) FROM runs r, generate_series(0, ${perRun - 1}) s`,
    );
    // RunService writes each run's signature when it creates the run; rows inserted here get theirs now.
    await app.container.resolve(HistoryService).ensureSignatures();
    // What autovacuum does after a bulk load: statistics, and the visibility map index-only scans need.
    await ds.query('VACUUM ANALYZE');
    const fillSeconds = (Date.now() - fillStarted) / 1000;
    const [{ n: runCount }] = await ds.query(`SELECT count(*)::int AS n FROM runs`);
    const [{ n: pointCount }] = await ds.query(`SELECT count(*)::bigint::text AS n FROM metric_points`);
    const [{ size }] = await ds.query(`SELECT pg_database_size(current_database())::bigint::text AS size`);
    const sample: Array<{ id: string }> = await ds.query(`SELECT r.id FROM runs r JOIN projects p ON p.id = r.project_id WHERE p.team_id = $1 AND r.status = 'succeeded' LIMIT 200`, [team.id]);

    const queries = apiBenchQueries(sample.map((r) => r.id));
    const kinds = Object.keys(queries) as ApiBenchKind[];
    const post = async (body: unknown) => {
      const response = await fetch(app.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
      const json = (await response.json()) as { errors?: unknown };
      if (json.errors) throw new Error(`query failed: ${JSON.stringify(json.errors)}`);
    };

    // 1. Uncached: the version bump makes every cached result stale.
    const uncached: Record<string, number[]> = {};
    for (const kind of kinds) {
      uncached[kind] = [];
      for (let i = 0; i < 20; i++) {
        await ds.query(`UPDATE change_counters SET version = version + 1 WHERE name = 'runs'`);
        const t0 = performance.now();
        await post(queries[kind](i));
        uncached[kind].push(performance.now() - t0);
      }
    }

    // 2. Load, with a writer finishing runs: once per think time.
    const phases: LoadPhase[] = [];
    for (const thinkMs of THINK_MS) {
      const phase = await runLoadPhase({ url: app.url, token, clients: CLIENTS, seconds: SECONDS, thinkMs, sampleRunIds: sample.map((r) => r.id) }, ds, dataDir, app.container.resolve(ResponseCache));
      phases.push(phase);
      printTable(
        `bench:api — ${runCount} runs, ${pointCount} metric points, ${CLIENTS} clients, think time ${thinkMs} ms, ${phase.seconds.toFixed(1)} s`,
        ['query', 'requests', 'p50 ms', 'p95 ms', 'p99 ms', 'req/s'],
        phase.rows.map((r) => [r.query, r.requests, r.p50, r.p95, r.p99, r.throughput]),
        [0, 0, 1, 1, 1, 1],
      );
      console.log(
        `  errors ${phase.errors}; writer finished ${phase.runsFinished} runs (${WRITES_PER_SECOND}/s); CPU per request: server ${phase.cpu.serverMsPerRequest.toFixed(2)} ms, ` +
          `Postgres ${phase.cpu.postgresMsPerRequest.toFixed(2)} ms, load generator ${phase.cpu.clientsMsPerRequest.toFixed(2)} ms (another process)`,
      );
      const answers = phase.wholeAnswers;
      const total = answers.kept + answers.shared + answers.computed;
      console.log(
        `  whole answers: ${((100 * answers.kept) / total).toFixed(1)}% served from memory, ${((100 * answers.shared) / total).toFixed(1)}% shared with a concurrent computation, ` +
          `${((100 * answers.computed) / total).toFixed(1)}% computed (each write makes every kept answer stale)`,
      );
    }
    const uncachedRows = kinds.map((k) => {
      const s = [...uncached[k]].sort((a, b) => a - b);
      return { query: k, requests: s.length, p50: pct(s, 50), p95: pct(s, 95), max: s.at(-1)! };
    });
    printTable('uncached (one client, every answer computed from the database)', ['query', 'requests', 'p50 ms', 'p95 ms', 'max ms'], uncachedRows.map((r) => [r.query, r.requests, r.p50, r.p95, r.max]), [0, 0, 1, 1, 1]);
    console.log(`database size ${(Number(size) / 2 ** 20).toFixed(0)} MiB; fill took ${fillSeconds.toFixed(0)} s`);
    const file = writeBenchResults('api', 0, {
      runs: runCount,
      metricPoints: Number(pointCount),
      clients: CLIENTS,
      databaseBytes: Number(size),
      fillSeconds,
      writesPerSecond: WRITES_PER_SECOND,
      uncached: uncachedRows,
      phases,
    });
    console.log(`wrote ${file}`);
  } finally {
    await app.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

interface LoadPhase {
  thinkMs: number;
  seconds: number;
  errors: number;
  runsFinished: number;
  cpu: { serverMsPerRequest: number; postgresMsPerRequest: number; clientsMsPerRequest: number };
  /** How the ResponseCache answered the phase's requests. */
  wholeAnswers: { kept: number; shared: number; computed: number };
  rows: Array<{ query: string; requests: number; p50: number; p95: number; p99: number; throughput: number }>;
}

/** Runs the client process for one phase while a writer finishes WRITES_PER_SECOND runs per second. */
async function runLoadPhase(job: ApiBenchJob, ds: DataSource, dataDir: string, responses: ResponseCache): Promise<LoadPhase> {
  const answers0 = responses.stats();
  const serverCpu0 = process.cpuUsage();
  const pgCpu0 = postgresCpuSeconds(dataDir);
  let runsFinished = 0;
  let writing = WRITES_PER_SECOND > 0;
  const writer = (async () => {
    while (writing) {
      await new Promise((resolve) => setTimeout(resolve, 1000 / WRITES_PER_SECOND));
      if (!writing) break;
      await ds.query(
        `UPDATE runs SET final_metrics = final_metrics || jsonb_build_object('top1', 0.5 + random() / 2)
          WHERE id = (SELECT id FROM runs WHERE status = 'succeeded' ORDER BY created_at DESC OFFSET $1 LIMIT 1)`,
        [(runsFinished * 7919) % 50_000],
      );
      runsFinished++;
    }
  })();
  const clientScript = path.join(__dirname, 'support', 'api-clients.js');
  const output = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [clientScript, JSON.stringify(job)], { maxBuffer: 256 * 2 ** 20 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout))),
  );
  writing = false;
  await writer;
  const serverCpu = process.cpuUsage(serverCpu0);
  const answers = responses.stats();
  const pgCpu = postgresCpuSeconds(dataDir) - pgCpu0;
  const load = JSON.parse(output) as { seconds: number; latencies: Record<ApiBenchKind, number[]>; errors: number; firstErrors: unknown[]; cpuSeconds: number };
  if (load.errors > 0) console.error(`first errors: ${JSON.stringify(load.firstErrors)}`);
  const row = (name: string, values: number[]) => {
    const s = [...values].sort((a, b) => a - b);
    return { query: name, requests: s.length, p50: pct(s, 50), p95: pct(s, 95), p99: pct(s, 99), throughput: s.length / load.seconds };
  };
  const kinds = Object.keys(load.latencies) as ApiBenchKind[];
  const all = Object.values(load.latencies).flat();
  return {
    thinkMs: job.thinkMs,
    seconds: load.seconds,
    errors: load.errors,
    runsFinished,
    cpu: {
      serverMsPerRequest: (serverCpu.user + serverCpu.system) / 1000 / all.length,
      postgresMsPerRequest: (pgCpu * 1000) / all.length,
      clientsMsPerRequest: (load.cpuSeconds * 1000) / all.length,
    },
    wholeAnswers: { kept: answers.hits - answers0.hits, shared: answers.shared - answers0.shared, computed: answers.misses - answers0.misses },
    rows: [...kinds.map((k) => row(k, load.latencies[k])), row('all', all)],
  };
}

/** CPU seconds (user + system) used so far by the Postgres processes serving `dataDir`. */
function postgresCpuSeconds(dataDir: string): number {
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      // The postmaster names the data dir; its backends are processes called "postgres" whose parent it is.
      if (!cmdline.includes(dataDir) && !(comm === 'postgres' && postmasterOf(stat, dataDir))) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / ticks;
    } catch {
      // the process ended while being read
    }
  }
  return total;
}

function postmasterOf(stat: string, dataDir: string): boolean {
  const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
  try {
    return fs.readFileSync(`/proc/${ppid}/cmdline`, 'utf8').includes(dataDir);
  } catch {
    return false;
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
