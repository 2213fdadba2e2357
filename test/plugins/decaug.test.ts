import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { colourMnist } from '../../src/core/data/colored-mnist';
import type { LabelledDataset } from '../../src/core/data/image-set';
import { toLabelledDataset, type RawImageSet } from '../../src/core/data/raw';
import { saveModelDir } from '../../src/core/models/model-files';
import type { ModelHandle, ModelSpec } from '../../src/core/models/model-spec';
import { buildModel } from '../../src/core/models/zoo';
import { PluginInputError, type StageCheckpoint } from '../../src/core/plugins/contracts';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { evaluateClassifier } from '../../src/core/training/evaluator';
import {
  augmentContextFeature,
  buildDecAugNet,
  crossEntropyInputGradient,
  decAugConfigSchema,
  gradientOrthogonality,
  plugin,
  stopGradient,
} from '../../src/plugins/decaug';
import { mnistSample } from '../training/mnist-sample';
import { predictLogits, stageContext } from './support/stage';

const read = (t: tf.Tensor): number[] => {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
};

/** Per-example softmax cross-entropy summed over the batch (so its gradient row b is example b's). */
function summedCrossEntropy(logits: tf.Tensor2D, labels: number[]): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.sum(tf.mul(tf.oneHot(tf.tensor1d(labels, 'int32'), logits.shape[1]), tf.logSoftmax(logits)))) as tf.Scalar);
}

function numericGradient(f: (x: tf.Tensor) => tf.Scalar, values: number[], shape: number[], eps = 1e-3): number[] {
  return values.map((_, i) => {
    const at = (delta: number) => {
      const v = values.slice();
      v[i] += delta;
      return tf.tidy(() => f(tf.tensor(v, shape)).dataSync()[0]);
    };
    return (at(eps) - at(-eps)) / (2 * eps);
  });
}

const seq = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 0.9);

describe('DecAug losses', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('cross-entropy input gradient on hand-computed values: (softmax(z) − onehot)·Kᵀ', () => {
    // z = [0, 0] → softmax [0.5, 0.5]; label 0 → [−0.5, 0.5]; Kᵀ = [[1, 3], [2, 4]] → [0.5, 0.5].
    const g = crossEntropyInputGradient(tf.tensor2d([[0, 0]]), tf.tensor1d([0], 'int32'), [tf.tensor2d([[1, 2], [3, 4]])]);
    read(g).forEach((v) => expect(v).toBeCloseTo(0.5, 6));
  });

  it('orthogonality is Σ_batch cos² on hand-computed values', () => {
    const a = tf.tensor2d([[1, 0], [1, 1], [2, 0]]);
    const b = tf.tensor2d([[0, 1], [1, 0], [-3, 0]]);
    // cos = 0, 1/√2, −1 → cos² sum 0 + 0.5 + 1.
    expect(read(gradientOrthogonality(a, b, 1e-12))[0]).toBeCloseTo(1.5, 5);
  });

  it('equals the autodiff gradient of each example’s loss through two dense layers', () => {
    const h = tf.tensor2d(seq(12, 1), [3, 4]);
    const k1 = tf.tensor2d(seq(20, 2), [4, 5]);
    const b1 = tf.tensor1d(seq(5, 3));
    const k2 = tf.tensor2d(seq(15, 4), [5, 3]);
    const b2 = tf.tensor1d(seq(3, 5));
    const labels = [2, 0, 1];
    const logitsOf = (x: tf.Tensor) => tf.add(tf.matMul(tf.add(tf.matMul(x as tf.Tensor2D, k1), b1), k2), b2) as tf.Tensor2D;
    const auto = read(tf.grad((x: tf.Tensor) => summedCrossEntropy(logitsOf(x), labels))(h));
    const analytic = read(tf.tidy(() => crossEntropyInputGradient(logitsOf(h), tf.tensor1d(labels, 'int32'), [k1, k2])));
    analytic.forEach((v, i) => expect(v).toBeCloseTo(auto[i], 5));
    tf.dispose([h, k1, b1, k2, b2]);
  });

  it('the orthogonality term’s gradient w.r.t. the branch kernels matches finite differences', () => {
    const h = tf.tensor2d(seq(12, 6), [3, 4]);
    const kCtx = tf.tensor2d(seq(8, 7), [4, 2]);
    const labels = tf.tensor1d([1, 0, 2], 'int32');
    const contexts = tf.tensor1d([0, 1, 1], 'int32');
    const shape = [4, 3];
    const orth = (kCat: tf.Tensor) =>
      tf.tidy(() => {
        const catGrad = crossEntropyInputGradient(tf.matMul(h, kCat as tf.Tensor2D), labels, [kCat as tf.Tensor2D]);
        const ctxGrad = crossEntropyInputGradient(tf.matMul(h, kCtx), contexts, [kCtx]);
        return gradientOrthogonality(catGrad, ctxGrad, 1e-8);
      });
    const values = seq(12, 8);
    const analytic = read(tf.grad(orth)(tf.tensor(values, shape)));
    const numeric = numericGradient(orth, values, shape);
    analytic.forEach((g, i) => expect(Math.abs(g - numeric[i])).toBeLessThan(3e-3));
    expect(Math.max(...analytic.map(Math.abs))).toBeGreaterThan(1e-2);
    tf.dispose([h, kCtx, labels, contexts]);
  });

  it('holding the probabilities (the reference’s detach) keeps the value and differentiates only through the kernels', () => {
    const h = tf.tensor2d(seq(12, 11), [3, 4]);
    const kCtx = tf.tensor2d(seq(8, 12), [4, 2]);
    const labels = tf.tensor1d([1, 0, 2], 'int32');
    const contexts = tf.tensor1d([0, 1, 1], 'int32');
    const shape = [4, 3];
    const values = seq(12, 13);
    const k0 = tf.tensor2d(values, [4, 3]);
    // The orthogonality term with the category logits computed from `logitsKernel` and the gradient chain from `chainKernel`.
    const orth = (logitsKernel: tf.Tensor, chainKernel: tf.Tensor, hold: boolean) =>
      tf.tidy(() => {
        const catGrad = crossEntropyInputGradient(tf.matMul(h, logitsKernel as tf.Tensor2D), labels, [chainKernel as tf.Tensor2D], hold);
        const ctxGrad = crossEntropyInputGradient(tf.matMul(h, kCtx), contexts, [kCtx], hold);
        return gradientOrthogonality(catGrad, ctxGrad, 1e-8);
      });
    expect(read(orth(k0, k0, true))[0]).toBeCloseTo(read(orth(k0, k0, false))[0], 6);
    const held = read(tf.grad((k: tf.Tensor) => orth(k, k, true))(k0));
    const full = read(tf.grad((k: tf.Tensor) => orth(k, k, false))(k0));
    // Held: the derivative of the term with the softmax frozen at k0, i.e. through the chain kernel only.
    const numeric = numericGradient((k) => orth(k0, k, false), values, shape);
    held.forEach((g, i) => expect(Math.abs(g - numeric[i])).toBeLessThan(3e-3));
    expect(Math.max(...held.map((g, i) => Math.abs(g - full[i])))).toBeGreaterThan(1e-3);
    // No gradient reaches the logits when held.
    const logits = tf.tensor2d(seq(6, 14), [3, 2]);
    expect(read(tf.grad((z: tf.Tensor) => tf.sum(crossEntropyInputGradient(z as tf.Tensor2D, contexts, [kCtx], true)))(logits)).every((g) => g === 0)).toBe(true);
    expect(read(tf.grad((z: tf.Tensor) => tf.sum(tf.square(crossEntropyInputGradient(z as tf.Tensor2D, contexts, [kCtx]))))(logits)).some((g) => g !== 0)).toBe(true);
    tf.dispose([h, kCtx, labels, contexts, k0, logits]);
  });

  it('augmentation moves the context feature by `scale` along the normalised context-loss gradient, which raises that loss', () => {
    const x = tf.tensor2d(seq(8, 9), [2, 4]);
    const k = tf.tensor2d(seq(12, 10), [4, 3]);
    const contexts = [2, 0];
    const scale = 0.37;
    const moved = read(tf.tidy(() => augmentContextFeature(x, tf.matMul(x, k), tf.tensor1d(contexts, 'int32'), k, scale, 1e-8)));
    // Direction from autodiff of the summed per-example loss (its rows are each example's gradient).
    const grad = read(tf.grad((v: tf.Tensor) => summedCrossEntropy(tf.matMul(v as tf.Tensor2D, k), contexts))(x));
    const xs = x.dataSync();
    for (let r = 0; r < 2; r++) {
      const row = grad.slice(r * 4, r * 4 + 4);
      const norm = Math.hypot(...row);
      row.forEach((g, j) => expect(moved[r * 4 + j]).toBeCloseTo(xs[r * 4 + j] + (scale * g) / norm, 5));
    }
    const lossAt = (values: number[]) => read(tf.tidy(() => summedCrossEntropy(tf.matMul(tf.tensor2d(values, [2, 4]), k), contexts)))[0];
    expect(lossAt(moved)).toBeGreaterThan(lossAt(Array.from(xs)));
    // The direction is held constant: the augmented feature's gradient w.r.t. the feature is the identity.
    const through = read(tf.grad((v: tf.Tensor) => tf.sum(augmentContextFeature(v as tf.Tensor2D, tf.matMul(v as tf.Tensor2D, k), tf.tensor1d(contexts, 'int32'), k, scale, 1e-8)))(x));
    through.forEach((g) => expect(g).toBeCloseTo(1, 6));
    expect(read(tf.grad((v: tf.Tensor) => tf.sum(stopGradient(tf.mul(v, 3))))(x)).every((g) => g === 0)).toBe(true);
    tf.dispose([x, k]);
  });
});

/** Colored-MNIST built from real digits (MNIST images 0..trainCount-1 train, the next testCount test). */
function colouredSubset(trainCount: number, testCount: number): LabelledDataset {
  const toRaw = (from: number, to: number): RawImageSet => {
    const s = mnistSample(from, to);
    return { pixels: Uint8Array.from(s.images, (v) => Math.round(v * 255)), labels: s.labels, count: s.count, shape: s.shape };
  };
  const raw = colourMnist(
    { name: 'mnist-subset', classNames: [...'0123456789'], provenance: 'test subset', train: toRaw(0, trainCount), test: toRaw(trainCount, trainCount + testCount) },
    { trainCorrelation: 0.9, seed: 1 },
  );
  return toLabelledDataset(raw);
}

describe('decaug on Colored-MNIST digits', () => {
  const data = colouredSubset(2000, 500);
  const spec: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 3], numClasses: 10, width: 1 };
  let teacher: ModelHandle;
  let root: string;

  beforeAll(async () => {
    await initTensorBackend('wasm');
    await tf.setBackend('wasm');
    teacher = { name: 'lenet-rgb', model: buildModel(spec, 3), spec };
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'decaug-'));
  });
  afterAll(async () => {
    teacher?.model.dispose();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('learns digits that hold on the colour-shuffled test split, leaks no tensors, exports a plain tfjs model', async () => {
    const config = decAugConfigSchema.parse({ epochs: 2, batchSize: 64, learningRate: 2e-3 });
    const ctx = stageContext(4);
    const before = tf.memory().numTensors;
    const out = await plugin.distill({ teacher, data: data.train }, config, ctx);
    const model = out.student.model;
    expect(tf.memory().numTensors).toBe(before + model.weights.length);
    expect(model.outputs[0].shape).toEqual([null, 10]);
    expect(model.layers.some((l) => l.name === 'context_logits')).toBe(false);
    const top1 = (await evaluateClassifier(model, data.test)).top1;
    // Chance is 0.1; colour alone predicts nothing on the test split (after 2 short epochs the net still leans on colour: ~0.5 measured).
    expect(top1).toBeGreaterThan(0.35);
    expect(out.metrics.steps).toBe(2 * Math.floor(2000 / 64));
    expect(ctx.reports.length).toBe(out.metrics.steps);
    expect(out.metrics.orthogonality).toBeGreaterThanOrEqual(0);
    expect(out.metrics.contextLoss).toBeGreaterThan(0);

    const dir = path.join(root, 'decaug');
    await saveModelDir(model, dir);
    const images = data.test.images.slice(0, 3 * 28 * 28 * 3);
    await fs.writeFile(path.join(root, 'input.json'), JSON.stringify({ shape: [3, 28, 28, 3], data: Array.from(images) }));
    const script = path.resolve(__dirname, '../fixtures/plain-tfjs-load.js');
    const plain = JSON.parse(execFileSync(process.execPath, [script, dir, path.join(root, 'input.json')], { encoding: 'utf8' })) as { shape: number[]; data: number[] };
    const ours = await predictLogits(model, images, [28, 28, 3]);
    expect(plain.shape).toEqual([3, 10]);
    plain.data.forEach((v, i) => expect(Math.abs(v - ours[i])).toBeLessThan(1e-4));
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('runs with a KD term from the teacher, deterministically for a seed', async () => {
    const small = { ...data.train, count: 256, images: data.train.images.slice(0, 256 * 2352), labels: data.train.labels.slice(0, 256), contexts: data.train.contexts!.slice(0, 256) };
    const config = decAugConfigSchema.parse({ epochs: 1, batchSize: 64, kdWeight: 0.5, temperature: 2 });
    const a = await plugin.distill({ teacher, data: small }, config, stageContext(2));
    const b = await plugin.distill({ teacher, data: small }, config, stageContext(2));
    const c = await plugin.distill({ teacher, data: small }, { ...config, kdWeight: 0 }, stageContext(2));
    expect(a.metrics.trainLoss).toBe(b.metrics.trainLoss);
    expect(a.metrics.trainLoss).not.toBe(c.metrics.trainLoss);
    [a, b, c].forEach((o) => o.student.model.dispose());
  });

  it('resumes from an in-stage checkpoint and ends exactly where an uninterrupted run ends', async () => {
    const small = { ...data.train, count: 256, images: data.train.images.slice(0, 256 * 2352), labels: data.train.labels.slice(0, 256), contexts: data.train.contexts!.slice(0, 256) };
    const config = decAugConfigSchema.parse({ epochs: 2, batchSize: 64 });
    const saved: Array<{ step: number; state: Buffer }> = [];
    const recorder: StageCheckpoint = { every: 3, load: async () => undefined, save: async (state, step) => void saved.push({ step, state: Buffer.from(state) }) };
    const whole = await plugin.distill({ teacher, data: small }, config, { ...stageContext(6), checkpoint: recorder });
    expect(saved.map((s) => s.step)).toEqual([3, 6]);
    // A new worker picks the stage up at step 3 (of 8): the branches, heads and optimizer state come back too.
    const ctx = { ...stageContext(6), checkpoint: { every: 3, load: async () => saved[0].state, save: async () => undefined } satisfies StageCheckpoint };
    const resumed = await plugin.distill({ teacher, data: small }, config, ctx);
    expect(ctx.reports.map((r) => r.step)).toEqual([4, 5, 6, 7, 8]);
    const weights = (m: tf.LayersModel) => Promise.all(m.weights.map(async (w) => Array.from(await w.read().data())));
    expect(await weights(resumed.student.model)).toEqual(await weights(whole.student.model));
    expect(resumed.metrics.trainLoss).toBe(whole.metrics.trainLoss);
    [whole, resumed].forEach((o) => o.student.model.dispose());
  });

  it('refuses a data set without context labels', async () => {
    const before = tf.memory().numTensors;
    const { contexts: _dropped, ...plain } = data.train;
    await expect(plugin.distill({ teacher, data: plain }, decAugConfigSchema.parse({}), stageContext(1))).rejects.toThrow(PluginInputError);
    await expect(plugin.distill({ teacher, data: plain }, decAugConfigSchema.parse({}), stageContext(1))).rejects.toThrow(/context label per training image/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('builds nets whose exported part needs no context head', () => {
    const net = buildDecAugNet(spec, 8, 10, 1);
    expect(net.trunk.outputs.map((o) => o.shape)).toEqual([[null, 84], [null, 8], [null, 8]]);
    net.disposeTrainingOnly();
    net.inference.dispose();
  });
});
