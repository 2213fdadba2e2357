/**
 * Item 9 of the foundation issue, end to end over real HTTP on a real Postgres: a team and a project,
 * plugins enabled, a LeNet-5-BN teacher trained on real MNIST, the pipeline noise → kd → magnitude
 * run on it, stage results and final metrics read back. Plus the refusals a pipeline can meet.
 */
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
let teamToken: string;
let projectId: string;
let datasetId: string;
let teacherId: string;
let teacherTop1: number;

const PIPELINE = `mutation($input: CreatePipelineInput!) { createPipeline(input: $input) { id name stages } }`;
const START = `mutation($id: ID!, $seed: Int!, $wait: Boolean!) {
  startRun(pipelineId: $id, seed: $seed, wait: $wait) {
    id status error errorCode seed backend pluginVersions teacherHash dataHash finalMetrics finalModelId hardware
    stages { index plugin kind status wallMs metrics outputArtifactId }
  }
}`;

beforeAll(async () => {
  server = await startTestServer({ backend: 'wasm' });
  const created = await server.ok(`mutation { createTeam(name: "vision") { team { id } adminToken { token } } }`);
  teamToken = created.createTeam.adminToken.token;
  projectId = (await server.ok(`mutation { createProject(name: "mnist-compression") { id } }`, {}, teamToken)).createProject.id;
  for (const plugin of ['noise', 'kd', 'magnitude', 'deep-inversion', 'natural-inversion']) {
    await server.ok(`mutation($p: ID!, $n: String!) { setPluginEnabled(projectId: $p, plugin: $n, enabled: true) { name enabled } }`, { p: projectId, n: plugin }, teamToken);
  }
  const dataset = await server.ok(
    `mutation($p: ID!) { registerDataset(projectId: $p, name: "mnist", source: { kind: "builtin", name: "mnist" }) { id trainCount testCount provenance } }`,
    { p: projectId },
    teamToken,
  );
  datasetId = dataset.registerDataset.id;
  expect(dataset.registerDataset.trainCount).toBe(60000);
  expect(dataset.registerDataset.testCount).toBe(10000);

  const teacher = await server.ok(
    `mutation($p: ID!, $d: ID!) {
      trainModel(projectId: $p, name: "teacher", spec: { architecture: "lenet5-bn" }, datasetId: $d,
                 options: { epochs: 1, batchSize: 64, learningRate: 0.003, trainImages: 4000, seed: 1 }) { id metrics params macs }
    }`,
    { p: projectId, d: datasetId },
    teamToken,
  );
  teacherId = teacher.trainModel.id;
  teacherTop1 = teacher.trainModel.metrics.top1;
}, 600_000);

afterAll(async () => {
  await server?.close();
});

test('the trained teacher is far above chance on the held-out MNIST split', () => {
  expect(teacherTop1).toBeGreaterThan(0.85);
});

test('noise → kd → magnitude runs through GraphQL and reports every stage and the final metrics', async () => {
  const pipeline = await server.ok(
    PIPELINE,
    {
      input: {
        projectId,
        name: 'noise-kd-magnitude',
        teacherModelId: teacherId,
        datasetId,
        stages: [
          { plugin: 'noise', config: { count: 512 } },
          { plugin: 'kd', config: { epochs: 1, batchSize: 64 } },
          { plugin: 'magnitude', config: { sparsity: 0.5 } },
        ],
      },
    },
    teamToken,
  );
  // Stored with the plugins' defaults merged in, so the record says exactly what ran.
  expect(pipeline.createPipeline.stages[1].config.temperature).toBe(4);

  const { startRun: run } = await server.ok(START, { id: pipeline.createPipeline.id, seed: 7, wait: true }, teamToken);
  expect(run.error).toBeNull();
  expect(run.status).toBe('succeeded');
  expect(run.backend).toBe('wasm');
  expect(run.seed).toBe(7);
  expect(run.pluginVersions).toEqual({ noise: '1.0.0', kd: '1.0.0', magnitude: '1.0.0' });
  expect(run.teacherHash).toMatch(/^[0-9a-f]{64}$/);
  expect(run.dataHash).toMatch(/^[0-9a-f]{64}$/);
  expect(run.hardware.cpuCores).toBeGreaterThan(0);
  // The pipeline signature is written with the run, not computed later by history queries.
  const [stored] = await server.app.dataSource.query(`SELECT signature, signature_text FROM runs WHERE id = $1`, [run.id]);
  expect(stored.signature).toMatch(/^[0-9a-f]{16,}$/);
  expect(stored.signature_text).toMatch(/noise.*kd.*magnitude/);

  expect(run.stages.map((s: any) => [s.plugin, s.kind, s.status])).toEqual([
    ['noise', 'synthesis', 'succeeded'],
    ['kd', 'distillation', 'succeeded'],
    ['magnitude', 'pruning', 'succeeded'],
  ]);
  const [noise, kd, magnitude] = run.stages;
  expect(noise.metrics.imagesMade).toBe(512);
  expect(noise.outputArtifactId).toBeTruthy();
  expect(kd.metrics.top1).toBeGreaterThan(0.1); // evaluated on the real test split
  expect(magnitude.metrics.sparsity).toBeCloseTo(0.5, 2);
  for (const stage of run.stages) expect(stage.wallMs).toBeGreaterThan(0);

  const final = run.finalMetrics;
  expect(final.top1).toBeCloseTo(magnitude.metrics.top1, 6);
  expect(final.teacherTop1).toBeCloseTo(teacherTop1, 6);
  expect(final.sparsityMasked).toBeGreaterThan(0.3);
  expect(final.params).toBeGreaterThan(0);
  expect(final.nonzeroParams).toBeLessThan(final.params);
  expect(final.macs).toBeGreaterThan(0);
  expect(final.bytesOnDisk).toBeGreaterThan(0);
  expect(final.latencyMs).toBeGreaterThan(0);
  expect(final.latencyBatchSize).toBe(1);
  expect(final.latencyBackend).toBe('wasm');
  expect(final.stageWallMs.map((s: any) => s.plugin)).toEqual(['noise', 'kd', 'magnitude']);
  expect(final.stageWallMs.map((s: any) => s.wallMs)).toEqual(run.stages.map((s: any) => s.wallMs));

  // The final model is recorded in the project, from this run.
  const models = await server.ok(`query($p: ID!) { models(projectId: $p) { id origin runId params } }`, { p: projectId }, teamToken);
  const finalModel = models.models.find((m: any) => m.id === run.finalModelId);
  expect(finalModel).toMatchObject({ origin: 'pipeline', runId: run.id });

  // Progress was recorded as metric points (kd reports its loss per step).
  const points = await server.ok(`query($id: ID!) { run(id: $id) { metricPoints(stageIndex: 1) { step name value } } }`, { id: run.id }, teamToken);
  expect(points.run.metricPoints.length).toBeGreaterThan(0);
  expect(points.run.metricPoints.every((p: any) => Number.isFinite(p.value))).toBe(true);
}, 600_000);

test('deep-inversion (ADI) and natural-inversion synthesize, measure and hand their images to kd through GraphQL', async () => {
  const pipeline = await server.ok(
    PIPELINE,
    {
      input: {
        projectId,
        name: 'adi-ni-kd',
        teacherModelId: teacherId,
        datasetId,
        stages: [
          { plugin: 'deep-inversion', config: { count: 20, batchSize: 10, iterations: 4, mode: 'adaptive', studentTraining: { stepsPerBatch: 2 } } },
          { plugin: 'natural-inversion', config: { count: 10, batchSize: 10, iterations: 3, generatorChannels: 8 } },
          { plugin: 'kd', config: { epochs: 1, batchSize: 10 } },
        ],
      },
    },
    teamToken,
  );
  const { startRun: run } = await server.ok(START, { id: pipeline.createPipeline.id, seed: 3, wait: true }, teamToken);
  expect(run.error).toBeNull();
  expect(run.status).toBe('succeeded');
  const [adi, ni, kd] = run.stages;
  expect(adi.metrics.imagesMade).toBe(20);
  expect(ni.metrics.imagesMade).toBe(10);
  for (const stage of [adi, ni]) {
    // The pipeline names MNIST, so the synthetic images are compared with its real test images.
    expect(stage.metrics.frechetDistance).toBeGreaterThan(0);
    expect(stage.metrics.targetAgreement).toBeGreaterThanOrEqual(0);
    expect(stage.metrics.imagesPerSecond).toBeGreaterThan(0);
    expect(stage.outputArtifactId).toBeTruthy();
  }
  expect(kd.metrics.top1).toBeGreaterThan(0);

  // Each synthesis stage's PNG grid is listed on the run and served.
  const { run: listed } = await server.ok(`query($id: ID!) { run(id: $id) { images { url stageIndex mediaType } } }`, { id: run.id }, teamToken);
  expect(listed.images.map((i: any) => i.stageIndex).sort()).toEqual([0, 1]);
  const png = await fetch(new URL(listed.images[0].url, server.url), { headers: { authorization: `Bearer ${teamToken}` } });
  expect(png.status).toBe(200);
  expect(png.headers.get('content-type')).toBe('image/png');
}, 600_000);

describe('pipelines that cannot run are refused before anything runs', () => {
  const create = (stages: unknown[], token = teamToken) =>
    server.gql(PIPELINE, { input: { projectId, name: 'bad', teacherModelId: teacherId, datasetId, stages } }, token);

  test('unknown plugin', async () => {
    const result = await create([{ plugin: 'deep-dream', config: {} }]);
    expect(result.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0].message).toMatch(/unknown plugin "deep-dream" \(known: .*kd.*\)/);
  });

  test('invalid config names the field', async () => {
    const result = await create([{ plugin: 'kd', config: { temperature: -1 } }]);
    expect(result.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0].message).toMatch(/temperature/);
  });

  test('unknown config key', async () => {
    const result = await create([{ plugin: 'noise', config: { cout: 10 } }]);
    expect(result.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0].message).toMatch(/cout/);
  });

  test('a plugin the project has not enabled, and nothing is stored', async () => {
    await server.ok(`mutation($p: ID!) { setPluginEnabled(projectId: $p, plugin: "magnitude", enabled: false) { enabled } }`, { p: projectId }, teamToken);
    const before = await server.ok(`query($p: ID!) { pipelines(projectId: $p) { id } }`, { p: projectId }, teamToken);
    const result = await create([{ plugin: 'magnitude', config: {} }]);
    expect(result.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0].message).toMatch(/not enabled/);
    const after = await server.ok(`query($p: ID!) { pipelines(projectId: $p) { id } }`, { p: projectId }, teamToken);
    expect(after.pipelines.length).toBe(before.pipelines.length);
    await server.ok(`mutation($p: ID!) { setPluginEnabled(projectId: $p, plugin: "magnitude", enabled: true) { enabled } }`, { p: projectId }, teamToken);
  });

  test("another team cannot run this team's pipeline", async () => {
    const pipelines = await server.ok(`query($p: ID!) { pipelines(projectId: $p) { id } }`, { p: projectId }, teamToken);
    const result = await server.gql(START, { id: pipelines.pipelines[0].id, seed: 0, wait: false }, server.adminToken);
    expect(['NOT_FOUND', 'FORBIDDEN']).toContain(result.errors?.[0].extensions?.code);
  });
});

test('a cancelled run ends cancelled, keeping what its finished stages stored', async () => {
  const pipeline = await server.ok(
    PIPELINE,
    {
      input: {
        projectId,
        name: 'long-kd',
        teacherModelId: teacherId,
        datasetId,
        stages: [
          { plugin: 'noise', config: { count: 256 } },
          { plugin: 'kd', config: { epochs: 200, batchSize: 32 } },
        ],
      },
    },
    teamToken,
  );
  const { startRun: run } = await server.ok(START, { id: pipeline.createPipeline.id, seed: 0, wait: false }, teamToken);
  // Wait until kd is running, then cancel.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const state = await server.ok(`query($id: ID!) { run(id: $id) { stages { status } } }`, { id: run.id }, teamToken);
    if (state.run.stages[1].status === 'running') break;
    if (Date.now() > deadline) throw new Error('kd never started');
    await new Promise((r) => setTimeout(r, 200));
  }
  const asked = Date.now();
  const { cancelRun } = await server.ok(`mutation($id: ID!) { cancelRun(id: $id) { status errorCode stages { status outputArtifactId } } }`, { id: run.id }, teamToken);
  expect(Date.now() - asked).toBeLessThan(10_000);
  expect(cancelRun.status).toBe('cancelled');
  expect(cancelRun.stages[0]).toMatchObject({ status: 'succeeded' });
  expect(cancelRun.stages[0].outputArtifactId).toBeTruthy();
  expect(cancelRun.stages[1].status).toBe('cancelled');
}, 300_000);
