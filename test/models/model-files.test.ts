import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../../src/core/models/zoo';
import type { ModelSpec } from '../../src/core/models/model-spec';
import { loadModelDir, loadModelFromFiles, ModelFormatError, modelContentHash, saveModelDir } from '../../src/core/models/model-files';
import { SeededRandom } from '../../src/core/random';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'condense-model-files-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const lenetSpec: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 0.5 };

/** Gives every weight, BN moving statistics included, seeded non-default values so a lost weight shows. */
function randomizeWeights(model: tf.LayersModel, seed: number): void {
  const random = new SeededRandom(seed);
  const values = model.weights.map((w) => {
    const size = (w.shape as number[]).reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: size }, () => (w.originalName.includes('variance') ? 0.5 + random.next() : random.gaussian() * 0.3));
    return tf.tensor(data, w.shape as number[]);
  });
  model.setWeights(values);
  tf.dispose(values);
}

function randomImages(shape: [number, number, number], batch: number, seed: number): tf.Tensor4D {
  const random = new SeededRandom(seed);
  const data = Float32Array.from({ length: batch * shape[0] * shape[1] * shape[2] }, () => random.next());
  return tf.tensor4d(data, [batch, ...shape]);
}

function predictArray(model: tf.LayersModel, x: tf.Tensor): Float32Array {
  const y = model.predict(x) as tf.Tensor;
  const data = y.dataSync() as Float32Array;
  y.dispose();
  return data;
}

async function readDirFiles(dir: string): Promise<{ modelJson: string; weights: Map<string, Buffer> }> {
  const weights = new Map<string, Buffer>();
  for (const name of await fs.readdir(dir)) if (name !== 'model.json') weights.set(name, await fs.readFile(path.join(dir, name)));
  return { modelJson: await fs.readFile(path.join(dir, 'model.json'), 'utf8'), weights };
}

describe('save and load', () => {
  let dir: string;
  let model: tf.LayersModel;
  let x: tf.Tensor4D;
  beforeAll(async () => {
    model = buildModel(lenetSpec, 3);
    randomizeWeights(model, 11);
    x = randomImages([28, 28, 1], 4, 5);
    dir = path.join(root, 'lenet');
  });
  afterAll(() => {
    model.dispose();
    x.dispose();
  });

  it('round-trips weights, predictions, spec and name through a directory', async () => {
    const { bytes } = await saveModelDir(model, dir, { spec: lenetSpec, name: 'teacher' });
    const sizes = await Promise.all((await fs.readdir(dir)).map(async (f) => (await fs.stat(path.join(dir, f))).size));
    expect(bytes).toBe(sizes.reduce((a, b) => a + b, 0));
    const handle = await loadModelDir(dir);
    expect(handle.name).toBe('teacher');
    expect(handle.spec).toEqual(lenetSpec);
    // Tensor names get a per-process suffix (conv1/kernel_1); the saved names are the original ones.
    expect(handle.model.weights.map((w) => w.originalName)).toEqual(model.weights.map((w) => w.originalName));
    const a = model.getWeights();
    const b = handle.model.getWeights();
    a.forEach((w, i) => expect(Array.from(b[i].dataSync())).toEqual(Array.from(w.dataSync())));
    expect(Array.from(predictArray(handle.model, x))).toEqual(Array.from(predictArray(model, x)));
    // Saving the loaded model again gives the same content.
    const again = path.join(root, 'lenet-again');
    await saveModelDir(handle.model, again);
    expect(await modelContentHash(again)).toBe(await modelContentHash(dir));
    handle.model.dispose();
  });

  it('loads the same model from uploaded bytes, with the same content hash', async () => {
    const files = await readDirFiles(dir);
    const handle = await loadModelFromFiles(files);
    expect(handle.spec).toEqual(lenetSpec);
    expect(Array.from(predictArray(handle.model, x))).toEqual(Array.from(predictArray(model, x)));
    expect(await modelContentHash(files)).toBe(await modelContentHash(dir));
    handle.model.dispose();
  });

  it('hashes content, not metadata: a renamed copy has the same hash, a changed weight a different one', async () => {
    const renamed = path.join(root, 'renamed');
    await saveModelDir(model, renamed, { name: 'other name' });
    expect(await modelContentHash(renamed)).toBe(await modelContentHash(dir));
    expect(await modelContentHash(dir)).toMatch(/^[0-9a-f]{64}$/);

    const changed = path.join(root, 'changed');
    await fs.cp(dir, changed, { recursive: true });
    const weights = await fs.readFile(path.join(changed, 'weights.bin'));
    weights.writeFloatLE(weights.readFloatLE(0) + 1, 0);
    await fs.writeFile(path.join(changed, 'weights.bin'), weights);
    expect(await modelContentHash(changed)).not.toBe(await modelContentHash(dir));
  });
});

describe('plain @tensorflow/tfjs loads an export', () => {
  it.each<[string, ModelSpec]>([
    ['LeNet-5-BN', lenetSpec],
    ['ResNet-8', { architecture: 'resnet-cifar', inputShape: [32, 32, 3], numClasses: 10, width: 0.5, depth: 8 }],
    ['VGG-BN', { architecture: 'vgg-bn', inputShape: [32, 32, 3], numClasses: 10, width: 0.25, depth: 2 }],
  ])('%s gives the same predictions without Condense code', async (label, spec) => {
    const model = buildModel(spec, 1);
    randomizeWeights(model, 2);
    const dir = path.join(root, `plain-${label}`);
    await saveModelDir(model, dir, { spec });
    const x = randomImages(spec.inputShape, 3, 9);
    const inputFile = path.join(root, `input-${label}.json`);
    await fs.writeFile(inputFile, JSON.stringify({ shape: x.shape, data: Array.from(x.dataSync()) }));
    const script = path.resolve(__dirname, '../fixtures/plain-tfjs-load.js');
    const stdout = execFileSync(process.execPath, [script, dir, inputFile], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const plain = JSON.parse(stdout) as { shape: number[]; data: number[] };
    const ours = predictArray(model, x);
    expect(plain.shape).toEqual([3, spec.numClasses]);
    expect(plain.data).toHaveLength(ours.length);
    plain.data.forEach((v, i) => expect(Math.abs(v - ours[i])).toBeLessThanOrEqual(1e-5));
    x.dispose();
    model.dispose();
  });
});

describe('malformed input gives ModelFormatError', () => {
  let good: string;
  beforeAll(async () => {
    good = path.join(root, 'good');
    const model = buildModel(lenetSpec, 0);
    await saveModelDir(model, good);
    model.dispose();
  });

  async function variant(name: string, edit: (dir: string) => Promise<void>): Promise<string> {
    const dir = path.join(root, name);
    await fs.cp(good, dir, { recursive: true });
    await edit(dir);
    return dir;
  }
  const editJson = (f: (json: any) => void) => async (dir: string) => {
    const json = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8'));
    f(json);
    await fs.writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
  };

  async function expectFormatError(dir: string, message: RegExp): Promise<void> {
    const err = await loadModelDir(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelFormatError);
    expect((err as Error).message).toMatch(message);
  }

  it('missing directory', async () => expectFormatError(path.join(root, 'nope'), /does not exist/));
  it('a file instead of a directory', async () => {
    const file = path.join(root, 'file.txt');
    await fs.writeFile(file, 'x');
    await expectFormatError(file, /not a directory/);
  });
  it('no model.json', async () => expectFormatError(await variant('no-json', (d) => fs.rm(path.join(d, 'model.json'))), /no model\.json/));
  it('invalid JSON', async () =>
    expectFormatError(await variant('bad-json', (d) => fs.writeFile(path.join(d, 'model.json'), '{"modelTopology": ')), /not valid JSON/));
  it('a graph model', async () =>
    expectFormatError(await variant('graph', editJson((j) => { j.format = 'graph-model'; j.modelTopology = { node: [] }; })), /graph model/));
  it('not a layers model', async () =>
    expectFormatError(await variant('not-layers', editJson((j) => { j.modelTopology = { class_name: 'Dense', config: {} }; })), /not a TF\.js LayersModel/));
  it('missing weight file', async () =>
    expectFormatError(await variant('no-weights', (d) => fs.rm(path.join(d, 'weights.bin'))), /weight file "weights\.bin" .* is missing/));
  it('weight file of the wrong size', async () =>
    expectFormatError(
      await variant('short-weights', async (d) => {
        const w = await fs.readFile(path.join(d, 'weights.bin'));
        await fs.writeFile(path.join(d, 'weights.bin'), w.subarray(0, w.length - 8));
      }),
      /hold \d+ bytes but .* describes \d+ bytes/,
    ));
  it('weight path escaping the directory', async () =>
    expectFormatError(await variant('escape', editJson((j) => { j.weightsManifest[0].paths = ['../good/weights.bin']; })), /relative names inside/));
  it('a model that does not take images', async () => {
    const dense = tf.sequential({ layers: [tf.layers.dense({ inputShape: [10], units: 3 })] });
    const dir = path.join(root, 'dense');
    await saveModelDir(dense, dir);
    dense.dispose();
    await expectFormatError(dir, /must take images \[batch, height, width, channels\]/);
  });
  it('an upload without its weights', async () => {
    const files = await readDirFiles(good);
    files.weights.clear();
    await expect(loadModelFromFiles(files)).rejects.toThrow(ModelFormatError);
  });
});
