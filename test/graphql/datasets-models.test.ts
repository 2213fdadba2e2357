import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeIdx } from '../../src/core/data/idx';
import { saveModelDir, serializeModel } from '../../src/core/models/model-files';
import { buildModel } from '../../src/core/models/zoo';
import { ModelService } from '../../src/core/projects/model.service';
import { ModelRecord } from '../../src/core/records/model.entity';
import { SeededRandom } from '../../src/core/random';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
let projectId: string;
let work: string;

/** 28×28 grey digits-to-be: class 0 has a bright vertical bar in the left half, class 1 in the right half. */
function writeBarsDataset(dir: string, trainCount: number, testCount: number, seed: number) {
  const rng = new SeededRandom(seed);
  const make = (n: number, prefix: string) => {
    const images = new Uint8Array(n * 28 * 28);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const label = i % 2;
      labels[i] = label;
      const column = label === 0 ? 4 + rng.int(7) : 17 + rng.int(7);
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          const bar = Math.abs(x - column) <= 1 && y >= 4 && y < 24;
          images[i * 784 + y * 28 + x] = bar ? 200 + rng.int(56) : rng.int(60);
        }
      }
    }
    writeIdx(path.join(dir, `${prefix}-images.idx`), images, [n, 28, 28]);
    writeIdx(path.join(dir, `${prefix}-labels.idx`), labels, [n]);
    return { images, labels };
  };
  make(trainCount, 'train');
  return make(testCount, 'test');
}

const idxSource = (dir: string) => ({
  kind: 'idx',
  trainImages: path.join(dir, 'train-images.idx'),
  trainLabels: path.join(dir, 'train-labels.idx'),
  testImages: path.join(dir, 'test-images.idx'),
  testLabels: path.join(dir, 'test-labels.idx'),
});

const count = async (table: string): Promise<number> => (await server.app.dataSource.query(`SELECT count(*)::int AS n FROM ${table}`))[0].n;
const artifactFiles = () => {
  const root = path.join(server.dataDir, 'artifacts');
  return fs.existsSync(root) ? fs.readdirSync(root).filter((d) => d !== 'tmp') : [];
};

const REGISTER = `mutation($p: ID!, $name: String!, $source: DatasetSourceInput!) {
  registerDataset(projectId: $p, name: $name, source: $source) { id name numClasses classNames trainCount testCount inputShape contentHash provenance source }
}`;
const IMPORT = `mutation($p: ID!, $name: String!, $path: String!) {
  importModel(projectId: $p, name: $name, path: $path) { id name architecture origin inputShape numClasses params macs bytes contentHash }
}`;
const UPLOAD = `mutation($p: ID!, $name: String!, $json: String!, $weights: String!) {
  uploadModel(projectId: $p, name: $name, modelJson: $json, weightsBase64: $weights) { id origin inputShape numClasses params macs bytes contentHash }
}`;

beforeAll(async () => {
  server = await startTestServer();
  projectId = (await server.ok('mutation { createProject(name: "compress") { id } }')).createProject.id;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-gql-'));
});
afterAll(async () => {
  await server?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('registerDataset', () => {
  it('refuses sources whose paths do not exist with BAD_USER_INPUT, storing nothing', async () => {
    const missing = path.join(work, 'no-such-dir');
    const cases = [
      { source: idxSource(missing), expected: missing },
      { source: { kind: 'image-folder', dir: missing }, expected: 'does not exist' },
      { source: { kind: 'cifar10', dir: missing }, expected: missing },
      { source: { kind: 'builtin', name: 'imagenet' }, expected: 'mnist' },
      { source: { kind: 'tfrecord', dir: work }, expected: 'kind' },
    ];
    for (const { source, expected } of cases) {
      const result = await server.gql(REGISTER, { p: projectId, name: 'broken', source });
      expect(result.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
      expect(result.errors?.[0].message).toContain(expected);
    }
    expect(await count('datasets')).toBe(0);
  });

  it('loads a dataset to count and hash it, and records where it came from', async () => {
    const dir = path.join(work, 'bars');
    fs.mkdirSync(dir);
    writeBarsDataset(dir, 240, 80, 1);
    const { registerDataset: ds } = await server.ok(REGISTER, { p: projectId, name: 'bars', source: idxSource(dir) });
    expect(ds).toMatchObject({ name: 'bars', numClasses: 2, trainCount: 240, testCount: 80, inputShape: [28, 28, 1], source: idxSource(dir) });
    expect(ds.classNames).toHaveLength(2);
    expect(ds.contentHash).toMatch(/^[0-9a-f]{64}$/);

    const again = await server.ok(REGISTER, { p: projectId, name: 'bars-again', source: idxSource(dir) });
    expect(again.registerDataset.contentHash).toBe(ds.contentHash);
    const duplicate = await server.gql(REGISTER, { p: projectId, name: 'bars', source: idxSource(dir) });
    expect(duplicate.errors?.[0].extensions?.code).toBe('CONFLICT');

    const listed = await server.ok('query($p: ID!) { datasets(projectId: $p) { name } project(id: $p) { datasets { name } } }', { p: projectId });
    expect(listed.datasets.map((d: { name: string }) => d.name)).toEqual(['bars', 'bars-again']);
    expect(listed.project.datasets).toEqual(listed.datasets);
  });
});

describe('importModel and uploadModel', () => {
  it('refuses malformed model directories with BAD_USER_INPUT, storing nothing', async () => {
    const notJson = path.join(work, 'not-json');
    fs.mkdirSync(notJson);
    fs.writeFileSync(path.join(notJson, 'model.json'), '{ this is not json');
    const noWeights = path.join(work, 'no-weights');
    await saveModelDir(buildModel({ architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 2, width: 0.5 }, 3), noWeights);
    fs.rmSync(path.join(noWeights, 'weights.bin'));
    const empty = path.join(work, 'empty');
    fs.mkdirSync(empty);

    for (const [dir, expected] of [
      [notJson, 'not valid JSON'],
      [noWeights, 'weights.bin'],
      [empty, 'model.json'],
      [path.join(work, 'absent'), 'does not exist'],
    ]) {
      const result = await server.gql(IMPORT, { p: projectId, name: 'bad', path: dir });
      expect(result.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
      expect(result.errors?.[0].message).toContain(expected);
    }
    const badUpload = await server.gql(UPLOAD, { p: projectId, name: 'bad', json: '{"modelTopology": 1}', weights: '' });
    expect(badUpload.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    const badBase64 = await server.gql(UPLOAD, { p: projectId, name: 'bad', json: '{}', weights: 'not base64!' });
    expect(badBase64.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');

    expect(await count('models')).toBe(0);
    expect(await count('artifacts')).toBe(0);
    expect(artifactFiles()).toEqual([]);
  });

  it('uploads a sharded model and imports the same model from a directory, keeping its predictions', async () => {
    const model = buildModel({ architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 2, width: 0.5 }, 11);
    const files = await serializeModel(model);
    // Split the weights over two shard files, as tensorflowjs_converter does for big models.
    const json = JSON.parse(files.modelJson.toString());
    const specs = json.weightsManifest[0].weights;
    const half = Math.floor(specs.length / 2);
    json.weightsManifest = [
      { paths: ['group1-shard1of1.bin'], weights: specs.slice(0, half) },
      { paths: ['group2-shard1of1.bin'], weights: specs.slice(half) },
    ];
    const weights = files.weights.get('weights.bin')!;
    const uploaded = (await server.ok(UPLOAD, { p: projectId, name: 'teacher', json: JSON.stringify(json), weights: weights.toString('base64') })).uploadModel;
    expect(uploaded).toMatchObject({ origin: 'imported', inputShape: [28, 28, 1], numClasses: 2, params: model.countParams() });
    expect(uploaded.macs).toBeGreaterThan(0);
    expect(uploaded.bytes).toBeGreaterThan(weights.length);

    const dir = path.join(work, 'exported');
    await saveModelDir(model, dir);
    const imported = (await server.ok(IMPORT, { p: projectId, name: 'teacher-from-dir', path: dir })).importModel;
    expect(imported.contentHash).toBe(uploaded.contentHash);
    expect(imported.params).toBe(uploaded.params);
    expect(imported.macs).toBe(uploaded.macs);

    const duplicate = await server.gql(IMPORT, { p: projectId, name: 'teacher', path: dir });
    expect(duplicate.errors?.[0].extensions?.code).toBe('CONFLICT');

    // The stored model predicts what the original predicts.
    const service = server.app.container.resolve(ModelService);
    const record = await server.app.dataSource.getRepository(ModelRecord).findOneByOrFail({ id: uploaded.id });
    const stored = await service.loadModel(record);
    const x = tf.tidy(() => tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 5));
    const [a, b] = [model.predict(x) as tf.Tensor, stored.model.predict(x) as tf.Tensor];
    const [expected, actual] = [await a.data(), await b.data()];
    expect(Array.from(actual)).toEqual(Array.from(expected));
    tf.dispose([x, a, b]);
    stored.model.dispose();
    model.dispose();
  });
});

describe('createZooModel and trainModel', () => {
  it('builds an untrained zoo model and refuses a bad spec', async () => {
    const zoo = await server.ok(
      'mutation($p: ID!) { createZooModel(projectId: $p, name: "student", spec: { architecture: "lenet5-bn", inputShape: [28, 28, 1], numClasses: 10, width: 0.5 }) { architecture origin spec numClasses classNames params } }',
      { p: projectId },
    );
    const reference = buildModel({ architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 0.5 });
    expect(zoo.createZooModel).toMatchObject({ architecture: 'lenet5-bn', origin: 'zoo', numClasses: 10, params: reference.countParams() });
    expect(zoo.createZooModel.classNames).toHaveLength(10);
    reference.dispose();

    const bad = await server.gql('mutation($p: ID!) { createZooModel(projectId: $p, name: "x", spec: { architecture: "transformer", inputShape: [28, 28, 1], numClasses: 10 }) { id } }', {
      p: projectId,
    });
    expect(bad.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    expect(bad.errors?.[0].message).toContain('lenet5-bn');
  });

  it('trains on a registered dataset, records top-1 measured on the test split, and refuses a wrong input shape', async () => {
    const { datasets } = await server.ok('query($p: ID!) { datasets(projectId: $p) { id name } }', { p: projectId });
    const bars = datasets.find((d: { name: string }) => d.name === 'bars');
    const before = await count('models');
    const wrong = await server.gql(
      'mutation($p: ID!, $d: ID!) { trainModel(projectId: $p, name: "wrong", datasetId: $d, spec: { architecture: "lenet5-bn", inputShape: [32, 32, 1] }) { id } }',
      { p: projectId, d: bars.id },
    );
    expect(wrong.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    expect(wrong.errors?.[0].message).toMatch(/inputShape \[32,32,1\].*\[28,28,1\]/);
    const badOptions = await server.gql(
      'mutation($p: ID!, $d: ID!) { trainModel(projectId: $p, name: "wrong", datasetId: $d, spec: { architecture: "lenet5-bn" }, options: { epochs: 0 }) { id } }',
      { p: projectId, d: bars.id },
    );
    expect(badOptions.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    expect(badOptions.errors?.[0].message).toContain('epochs');
    expect(await count('models')).toBe(before);

    const trained = (
      await server.ok(
        `mutation($p: ID!, $d: ID!) { trainModel(projectId: $p, name: "bars-lenet", datasetId: $d,
           spec: { architecture: "lenet5-bn", width: 0.5 }, options: { epochs: 3, batchSize: 32, learningRate: 0.003, seed: 1 }) {
           id origin datasetId inputShape numClasses metrics } }`,
        { p: projectId, d: bars.id },
      )
    ).trainModel;
    expect(trained).toMatchObject({ origin: 'trained', datasetId: bars.id, inputShape: [28, 28, 1], numClasses: 2 });
    expect(trained.metrics.trainMs).toBeGreaterThan(0);
    expect(trained.metrics.top1).toBeGreaterThan(0.9);

    // Recompute top-1 on the test split from the stored model, independently of the evaluator.
    const test = writeBarsDataset(fs.mkdtempSync(path.join(work, 'again-')), 240, 80, 1);
    const record = await server.app.dataSource.getRepository(ModelRecord).findOneByOrFail({ id: trained.id });
    const stored = await server.app.container.resolve(ModelService).loadModel(record);
    const x = tf.tidy(() => tf.tensor4d(Float32Array.from(test.images, (v) => v / 255), [80, 28, 28, 1]));
    const predictions = tf.tidy(() => (stored.model.predict(x) as tf.Tensor).argMax(1));
    const predicted = await predictions.data();
    tf.dispose([x, predictions]);
    stored.model.dispose();
    const correct = test.labels.reduce((n, label, i) => n + (predicted[i] === label ? 1 : 0), 0);
    expect(trained.metrics.top1).toBeCloseTo(correct / 80, 10);
  });
});
