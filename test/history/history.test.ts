/**
 * Run history, comparison, leaderboards and image artifacts over real HTTP on a real Postgres, with
 * runs of two teams written straight into the database: team "vision" (the caller) and team
 * "audio", whose project "shared" is shared for comparison and whose project "private" is not.
 */
import { PNG } from 'pngjs';
import { ArtifactStore } from '../../src/core/artifacts/artifact-store';
import { startTestServer, type TestServer } from '../support/server';
import { seedPipeline } from './seed';

let server: TestServer;
let vision: string; // token of vision's admin
let audio: string; // token of audio's admin
let audioMember: string; // token of a non-admin member of audio
let audioTeamId: string;
let visionProject: string;
let sharedProject: string;
let privateProject: string;
const runs: Record<string, string[]> = {};
const pipelines: Record<string, string> = {};
/** Everything seeded, to compute expected answers independently of the SQL. */
const seeded: Array<{ id: string; project: string; seed: number; status: string; createdAt: Date; metrics: any; plugins: string[] }> = [];

const KD = (temperature: number) => [
  { plugin: 'noise', config: { count: 64 } },
  { plugin: 'kd', config: { epochs: 1, batchSize: 64, temperature } },
];
const T0 = Date.parse('2026-01-01T00:00:00Z');

async function seed(project: string, name: string, stages: Array<{ plugin: string; config: Record<string, unknown> }> = KD(4), runSpecs: Array<{ seed: number; status?: string; metrics?: any; at: number }>) {
  const { pipelineId, runIds } = await seedPipeline(server.app.dataSource, {
    projectId: project,
    name,
    stages,
    kinds: stages.map((s) => (s.plugin === 'magnitude' ? 'pruning' : s.plugin === 'noise' ? 'synthesis' : 'distillation')),
    runs: runSpecs.map((r) => ({ seed: r.seed, status: r.status, finalMetrics: r.metrics ?? null, createdAt: new Date(T0 + r.at) })),
  });
  pipelines[name] = pipelineId;
  runs[name] = runIds;
  runIds.forEach((id, i) =>
    seeded.push({ id, project, seed: runSpecs[i].seed, status: runSpecs[i].status ?? 'succeeded', createdAt: new Date(T0 + runSpecs[i].at), metrics: runSpecs[i].metrics ?? null, plugins: stages.map((s) => s.plugin) }),
  );
}

const metrics = (top1: number, params: number, macs: number, latencyMs = 1) => ({
  top1,
  params,
  macs,
  bytesOnDisk: params * 4,
  latencyMs,
  latencyBackend: 'wasm',
  latencyBatchSize: 1,
  stageWallMs: [
    { stage: 0, plugin: 'noise', wallMs: 100 },
    { stage: 1, plugin: 'kd', wallMs: 2000 },
  ],
});

beforeAll(async () => {
  server = await startTestServer({ backend: 'cpu' });
  const mk = async (name: string) => (await server.ok(`mutation($n: String!) { createTeam(name: $n) { team { id } adminToken { token } } }`, { n: name })).createTeam;
  const v = await mk('vision');
  const a = await mk('audio');
  vision = v.adminToken.token;
  audio = a.adminToken.token;
  audioTeamId = a.team.id;
  const member = await server.ok(`mutation($t: ID!) { createMember(teamId: $t, name: "intern") { id } }`, { t: audioTeamId }, audio);
  audioMember = (await server.ok(`mutation($m: ID!) { createApiToken(memberId: $m) { token } }`, { m: member.createMember.id }, audio)).createApiToken.token;
  const project = async (name: string, token: string) => (await server.ok(`mutation($n: String!) { createProject(name: $n) { id } }`, { n: name }, token)).createProject.id;
  visionProject = await project('mnist', vision);
  sharedProject = await project('shared', audio);
  privateProject = await project('private', audio);
  await server.ok(`mutation($p: ID!) { setProjectSharedForComparison(projectId: $p, shared: true) { id } }`, { p: sharedProject }, audio);

  // vision: 25 runs of one pipeline, some sharing a timestamp (the cursor must break ties by id).
  const specs = Array.from({ length: 25 }, (_, i) => ({
    seed: i,
    status: i % 5 === 4 ? 'failed' : 'succeeded',
    metrics: i % 5 === 4 ? null : metrics(0.5 + 0.015 * i, 10_000 + 1000 * (i % 7), 100_000 + 5000 * ((i * 3) % 11)),
    at: Math.floor(i / 3) * 1000,
  }));
  await seed(visionProject, 'kd-t4', KD(4), specs);
  await seed(visionProject, 'kd-t2', KD(2), [{ seed: 1, metrics: metrics(0.7, 9000, 90_000), at: 50_000 }]);
  await seed(visionProject, 'magnitude', [{ plugin: 'magnitude', config: { sparsity: 0.5 } }], [{ seed: 3, metrics: metrics(0.6, 5000, 50_000), at: 60_000 }]);
  await seed(sharedProject, 'audio-kd', KD(4), [
    { seed: 100, metrics: metrics(0.99, 50_000, 400_000), at: 70_000 },
    { seed: 101, metrics: metrics(0.95, 8_000, 60_000), at: 71_000 },
  ]);
  await seed(privateProject, 'secret', KD(4), [{ seed: 777, metrics: metrics(0.999, 1000, 1000), at: 80_000 }]);
}, 120_000);

afterAll(async () => {
  await server?.close();
});

const HISTORY = `query($f: RunHistoryFilter, $first: Int, $after: String) {
  runHistory(filter: $f, first: $first, after: $after) { edges { cursor node { id seed projectId } } pageInfo { hasNextPage endCursor } }
}`;

async function allPages(filter: unknown, first: number, token = vision): Promise<string[]> {
  const ids: string[] = [];
  let after: string | null = null;
  for (let page = 0; page < 100; page++) {
    const { runHistory }: any = await server.ok(HISTORY, { f: filter, first, after }, token);
    ids.push(...runHistory.edges.map((e: any) => e.node.id));
    if (!runHistory.pageInfo.hasNextPage) return ids;
    after = runHistory.pageInfo.endCursor;
  }
  throw new Error('too many pages');
}

/** Expected order: newest first, ties by id descending (uuid text order = Postgres uuid order). */
const expectedOrder = (rows: typeof seeded) =>
  [...rows].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1)).map((r) => r.id);
const visibleToVision = () => seeded.filter((r) => r.project !== privateProject);

describe('runHistory', () => {
  test('pages through every visible run exactly once, newest first, whatever the page size', async () => {
    for (const first of [1, 7, 100]) {
      expect(await allPages(null, first)).toEqual(expectedOrder(visibleToVision()));
    }
  });

  test('another team sees its own runs and none of vision’s unshared project', async () => {
    const ids = await allPages(null, 50, audio);
    expect(ids.sort()).toEqual(seeded.filter((r) => r.project !== visionProject).map((r) => r.id).sort());
  });

  test('filters: status, plugin, project, team, dates, metric thresholds', async () => {
    const check = async (filter: unknown, keep: (r: (typeof seeded)[number]) => boolean) =>
      expect(await allPages(filter, 10)).toEqual(expectedOrder(visibleToVision().filter(keep)));
    await check({ statuses: ['failed'] }, (r) => r.status === 'failed');
    await check({ plugins: ['magnitude'] }, (r) => r.plugins.includes('magnitude'));
    await check({ projectIds: [sharedProject] }, (r) => r.project === sharedProject);
    await check({ teamIds: [audioTeamId] }, (r) => r.project === sharedProject);
    const after = new Date(T0 + 5000);
    const before = new Date(T0 + 60_000);
    await check({ createdAfter: after.toISOString(), createdBefore: before.toISOString() }, (r) => r.createdAt > after && r.createdAt < before);
    await check({ metrics: [{ name: 'top1', min: 0.7 }, { name: 'params', max: 14_000 }] }, (r) => r.metrics && r.metrics.top1 >= 0.7 && r.metrics.params <= 14_000);
    await check({ metrics: [{ name: 'latencyBatchSize', min: 1, max: 1 }] }, (r) => r.metrics?.latencyBatchSize === 1);
  });

  test('refuses pages over 100, bad cursors and bad metric names with BAD_USER_INPUT', async () => {
    for (const [variables, pattern] of [
      [{ first: 101 }, /first must be an integer from 1 to 100/],
      [{ first: 5, after: 'bm90LWEtY3Vyc29y' }, /invalid cursor/],
      [{ f: { metrics: [{ name: 'top1; DROP TABLE runs', min: 0 }] } }, /metric name/],
    ] as const) {
      const result = await server.gql(HISTORY, variables as any, vision);
      expect(result.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
      expect(result.errors?.[0].message).toMatch(pattern);
    }
  });
});

describe('metric series', () => {
  const value = (step: number) => Math.sin(step / 100) + step / 10_000;
  beforeAll(async () => {
    await server.app.dataSource.query(
      `INSERT INTO metric_points (run_id, stage_index, step, name, value) SELECT $1, 1, s, 'loss', sin(s / 100.0) + s / 10000.0 FROM generate_series(0, 9999) s`,
      [runs['kd-t4'][0]],
    );
    await server.app.dataSource.query(
      `INSERT INTO metric_points (run_id, stage_index, step, name, value) SELECT $1, 0, s, 'loss', s * 2 FROM generate_series(1, 50) s`,
      [runs['audio-kd'][0]],
    );
  });

  test('a long series comes back as maxPoints buckets with the min, mean and max of their points', async () => {
    const q = `query($id: ID!) { runMetricSeries(runId: $id, name: "loss", maxPoints: 100) { totalPoints downsampled points { stageIndex step stepEnd min mean max count } } }`;
    const { runMetricSeries: s } = await server.ok(q, { id: runs['kd-t4'][0] }, vision);
    expect(s.totalPoints).toBe(10_000);
    expect(s.downsampled).toBe(true);
    expect(s.points).toHaveLength(100);
    s.points.forEach((p: any, k: number) => {
      const steps = Array.from({ length: 100 }, (_, j) => 100 * k + j);
      const values = steps.map(value);
      expect([p.stageIndex, p.step, p.stepEnd, p.count]).toEqual([1, steps[0], steps[99], 100]);
      expect(p.min).toBeCloseTo(Math.min(...values), 9);
      expect(p.max).toBeCloseTo(Math.max(...values), 9);
      expect(p.mean).toBeCloseTo(values.reduce((a, b) => a + b, 0) / 100, 9);
    });
  });

  test('a short series of a shared run comes back point by point, also as a stage loss curve', async () => {
    const { runMetricSeries: s } = await server.ok(`query($id: ID!) { runMetricSeries(runId: $id, name: "loss") { downsampled points { step min mean max } } }`, { id: runs['audio-kd'][0] }, vision);
    expect(s.downsampled).toBe(false);
    expect(s.points.map((p: any) => [p.step, p.min, p.mean, p.max])).toEqual(Array.from({ length: 50 }, (_, i) => [i + 1, 2 * (i + 1), 2 * (i + 1), 2 * (i + 1)]));
    const { compareRuns } = await server.ok(`query($ids: [ID!]!) { compareRuns(ids: $ids) { rows { run { stages { index lossCurve(maxPoints: 10) { points { count } } } } } } }`, { ids: [runs['audio-kd'][0]] }, vision);
    expect(compareRuns.rows[0].run.stages[0].lossCurve.points.map((p: any) => p.count)).toEqual(Array(10).fill(5));
  });

  test('the series of an unshared project’s run is FORBIDDEN', async () => {
    const result = await server.gql(`query($id: ID!) { runMetricSeries(runId: $id, name: "loss") { totalPoints } }`, { id: runs['secret'][0] }, vision);
    expect(result.errors?.[0].extensions?.code).toBe('FORBIDDEN');
  });
});

describe('comparison', () => {
  const COMPARE = `query($ids: [ID!]!) { compareRuns(ids: $ids) {
    rows { run { id } signature signatureText differences top1 params macs bytesOnDisk latencyMs latencyBackend latencyBatchSize stageWallMs { stage plugin wallMs } }
    groups { signature runCount seeds stats { metric mean std n } }
  } }`;

  test('side by side: only differing settings, metrics, wall times, and seed groups with mean ± std', async () => {
    const ids = [runs['kd-t4'][0], runs['kd-t4'][1], runs['kd-t2'][0], runs['audio-kd'][1]];
    const { compareRuns: c } = await server.ok(COMPARE, { ids }, vision);
    expect(c.rows.map((r: any) => r.run.id)).toEqual(ids);
    // Same pipeline and versions, other seeds: one signature; the temperature changes it.
    expect(c.rows[0].signature).toBe(c.rows[1].signature);
    expect(c.rows[0].signature).toBe(c.rows[3].signature); // audio's pipeline is the same method
    expect(c.rows[2].signature).not.toBe(c.rows[0].signature);
    expect(c.rows[0].signatureText).toBe(
      'synthesis:noise@1.0.0(count=64) → distillation:kd@1.0.0(batchSize=64,epochs=1,temperature=4)',
    );
    expect(Object.keys(c.rows[0].differences).sort()).toEqual(['seed', 'stages.1.config.temperature']);
    expect(c.rows.map((r: any) => r.differences['stages.1.config.temperature'])).toEqual(['4', '4', '2', '4']);
    expect(c.rows[0]).toMatchObject({ top1: 0.5, params: 10_000, macs: 100_000, bytesOnDisk: 40_000, latencyBackend: 'wasm', latencyBatchSize: 1 });
    expect(c.rows[0].stageWallMs).toEqual([{ stage: 0, plugin: 'noise', wallMs: 100 }, { stage: 1, plugin: 'kd', wallMs: 2000 }]);

    const group = c.groups.find((g: any) => g.signature === c.rows[0].signature);
    const members = seeded.filter((r) => r.status === 'succeeded' && r.project !== privateProject && r.plugins.join() === 'noise,kd' && !runs['kd-t2'].includes(r.id));
    expect(group.runCount).toBe(members.length);
    expect(group.seeds).toEqual(members.map((m) => m.seed).sort((a, b) => a - b));
    const top1 = members.map((m) => m.metrics.top1);
    const mean = top1.reduce((a, b) => a + b, 0) / top1.length;
    const std = Math.sqrt(top1.reduce((a, b) => a + (b - mean) ** 2, 0) / (top1.length - 1));
    const stat = group.stats.find((s: any) => s.metric === 'top1');
    expect(stat.n).toBe(top1.length);
    expect(stat.mean).toBeCloseTo(mean, 9);
    expect(stat.std).toBeCloseTo(std, 9);
    // The private project's run has the same signature but is not counted.
    expect(group.seeds).not.toContain(777);
  });

  test('seedGroup(pipelineId) gives the same group', async () => {
    const { seedGroup } = await server.ok(`query($p: ID!) { seedGroup(pipelineId: $p) { signature runCount stats { metric mean n } } }`, { p: pipelines['kd-t4'] }, vision);
    expect(seedGroup).toHaveLength(1);
    expect(seedGroup[0].runCount).toBe(20 + 2);
  });

  test('comparing with a run of an unshared project is FORBIDDEN; unknown runs NOT_FOUND', async () => {
    const forbidden = await server.gql(COMPARE, { ids: [runs['kd-t4'][0], runs['secret'][0]] }, vision);
    expect(forbidden.errors?.[0].extensions?.code).toBe('FORBIDDEN');
    const missing = await server.gql(COMPARE, { ids: ['00000000-0000-4000-8000-000000000000'] }, vision);
    expect(missing.errors?.[0].extensions?.code).toBe('NOT_FOUND');
  });

  test('leaderboard ranks under constraints and returns the Pareto front of top-1 against MACs', async () => {
    const q = `query($in: LeaderboardInput!) { leaderboard(input: $in) { entries { rank value cost run { id } } paretoFront { value cost run { id } } } }`;
    const { leaderboard } = await server.ok(q, { in: { metric: 'top1', constraints: [{ name: 'params', max: 14_000 }], paretoAgainst: 'macs', first: 5 } }, vision);
    const candidates = visibleToVision().filter((r) => r.status === 'succeeded' && r.metrics && r.metrics.params <= 14_000);
    const byTop1 = [...candidates].sort((a, b) => b.metrics.top1 - a.metrics.top1);
    expect(leaderboard.entries.map((e: any) => e.run.id)).toEqual(byTop1.slice(0, 5).map((r) => r.id));
    expect(leaderboard.entries.map((e: any) => e.rank)).toEqual([1, 2, 3, 4, 5]);
    // Brute force: a run is on the front when no other candidate is at least as good on both and better on one.
    const dominated = (r: any) =>
      candidates.some((o) => o !== r && o.metrics.top1 >= r.metrics.top1 && o.metrics.macs <= r.metrics.macs && (o.metrics.top1 > r.metrics.top1 || o.metrics.macs < r.metrics.macs));
    const front = candidates.filter((r) => !dominated(r)).sort((a, b) => a.metrics.macs - b.metrics.macs);
    expect(leaderboard.paretoFront.map((e: any) => e.run.id)).toEqual(front.map((r) => r.id));
    expect(leaderboard.paretoFront.map((e: any) => e.run.id)).not.toContain(runs['secret'][0]);
    expect(front.length).toBeGreaterThan(1);
  });
});

describe('sharing and reruns', () => {
  test('only the owning team’s admins may change sharing', async () => {
    const q = `mutation($p: ID!, $s: Boolean!) { setProjectSharedForComparison(projectId: $p, shared: $s) { sharedForComparison } }`;
    expect((await server.gql(q, { p: privateProject, s: true }, vision)).errors?.[0].extensions?.code).toBe('FORBIDDEN');
    expect((await server.gql(q, { p: privateProject, s: true }, audioMember)).errors?.[0].extensions?.code).toBe('FORBIDDEN');
    const ids = await allPages({ projectIds: [privateProject] }, 10);
    expect(ids).toEqual([]);
  });

  test('rerun starts a new run of the same pipeline with the same seed, only in one’s own team', async () => {
    for (const plugin of ['noise', 'kd']) {
      await server.ok(`mutation($p: ID!, $n: String!) { setPluginEnabled(projectId: $p, plugin: $n, enabled: true) { name } }`, { p: visionProject, n: plugin }, vision);
    }
    const original = runs['kd-t4'][3];
    const { rerun } = await server.ok(`mutation($id: ID!) { rerun(runId: $id) { id pipelineId seed } }`, { id: original }, vision);
    expect(rerun.id).not.toBe(original);
    expect(rerun).toMatchObject({ pipelineId: pipelines['kd-t4'], seed: 3 });
    const other = await server.gql(`mutation($id: ID!) { rerun(runId: $id) { id } }`, { id: runs['audio-kd'][0] }, vision);
    expect(other.errors?.[0].extensions?.code).toBe('FORBIDDEN');
  });
});

describe('images over HTTP', () => {
  let visibleImage: string;
  let privateImage: string;
  let png: Buffer;

  beforeAll(async () => {
    const image = new PNG({ width: 4, height: 4 });
    for (let i = 0; i < image.data.length; i++) image.data[i] = (i * 37) % 256;
    png = PNG.sync.write(image);
    const store = server.app.container.resolve(ArtifactStore);
    const put = async (runId: string, bytes: Buffer, at: number) => {
      const artifact = await store.putBuffer('image', bytes, 'image/png', { runId });
      // Inside stage 0's time window, as RunService would have written it.
      await server.app.dataSource.query(`UPDATE artifacts SET created_at = $2 WHERE id = $1`, [artifact.id, new Date(T0 + at + 30_000)]);
      return artifact.id;
    };
    visibleImage = await put(runs['audio-kd'][1], png, 71_000);
    privateImage = await put(runs['secret'][0], Buffer.concat([png, Buffer.from([0])]), 80_000);
  });

  const get = (path: string, token?: string | null) =>
    fetch(new URL(path, server.url), { headers: token ? { authorization: `Bearer ${token}` } : {} });

  test('a shared run’s images are listed on the run and its stage and served as PNG', async () => {
    const { compareRuns } = await server.ok(
      `query($ids: [ID!]!) { compareRuns(ids: $ids) { rows { run { images { id url stageIndex mediaType } stages { index images { id } } } } } }`,
      { ids: [runs['audio-kd'][1]] },
      vision,
    );
    const run = compareRuns.rows[0].run;
    expect(run.images).toEqual([{ id: visibleImage, url: `/artifacts/${visibleImage}`, stageIndex: 0, mediaType: 'image/png' }]);
    expect(run.stages.map((s: any) => s.images.map((i: any) => i.id))).toEqual([[visibleImage], []]);
    const response = await get(run.images[0].url, vision);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await response.arrayBuffer()).equals(png)).toBe(true);
  });

  test('refusals: no token 401, unshared project 403, unknown or non-image 404', async () => {
    expect((await get(`/artifacts/${visibleImage}`)).status).toBe(401);
    expect((await get(`/artifacts/${visibleImage}`, 'cdk_not-a-real-token')).status).toBe(401);
    const forbidden = await get(`/artifacts/${privateImage}`, vision);
    expect(forbidden.status).toBe(403);
    expect(((await forbidden.json()) as any).error.code).toBe('FORBIDDEN');
    expect((await get(`/artifacts/${privateImage}`, audio)).status).toBe(200);
    expect((await get('/artifacts/00000000-0000-4000-8000-000000000000', vision)).status).toBe(404);
    expect((await get('/artifacts/..%2F..%2Fetc%2Fpasswd', vision)).status).toBe(404);
    const [model] = await server.app.dataSource.query(`SELECT id FROM artifacts WHERE kind = 'model' LIMIT 1`);
    expect((await get(`/artifacts/${model.id}`, vision)).status).toBe(404);
  });
});
