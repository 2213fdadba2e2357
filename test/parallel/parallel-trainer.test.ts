import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../../src/core/data/image-set';
import { buildModel } from '../../src/core/models/zoo';
import type { ModelSpec } from '../../src/core/models/model-spec';
import { ParallelTrainer, trainClassifierInParallel } from '../../src/core/parallel/parallel-trainer';
import { UnknownTrainingLossError } from '../../src/core/parallel/training-losses';
import { WorkerPool } from '../../src/core/parallel/worker-pool';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { evaluateClassifier } from '../../src/core/training/evaluator';
import { trainableParams } from '../../src/core/training/optimizers';
import { crossEntropy } from '../../src/core/training/trainer';
import { mnistSample } from '../training/mnist-sample';

const LENET: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 };

let pool: WorkerPool;

beforeAll(async () => {
  await initTensorBackend('wasm');
  pool = await WorkerPool.start({ size: 2, backend: 'wasm' });
});

afterAll(async () => {
  await pool?.close();
});

function flat(data: ImageSet) {
  return { images: data.images, labels: data.labels, count: data.count };
}

/** Single-thread gradients of the mean cross-entropy of `data` on `model` (BN in training mode), in trainable order, with the BN statistics after. */
async function referenceGradients(model: tf.LayersModel, data: ImageSet): Promise<{ grads: Float32Array[]; stats: Float32Array[] }> {
  const variables = trainableParams(model).map((p) => p.variable);
  const x = tf.tensor4d(data.images, [data.count, 28, 28, 1]);
  const y = tf.tensor1d(data.labels, 'int32');
  const { value, grads } = tf.variableGrads(() => crossEntropy(model.apply(x, { training: true }) as tf.Tensor2D, y), variables);
  const out = await Promise.all(variables.map(async (v) => (await grads[v.name].data()) as Float32Array));
  const stats = await Promise.all(model.nonTrainableWeights.map(async (w) => (await w.read().data()) as Float32Array));
  tf.dispose([x, y, value, ...Object.values(grads)]);
  return { grads: out, stats };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('2 workers: averaged gradient equals the mean of single-thread half-batch gradients; the step and BN statistics match', async () => {
  const batch = mnistSample(0, 48);
  const halfA = mnistSample(0, 24);
  const halfB = mnistSample(24, 48);
  const model = buildModel(LENET, 7);
  // Two identical single-thread copies, one per half (each moves its own BN statistics).
  const refA = buildModel(LENET, 7);
  const refB = buildModel(LENET, 7);
  const trainer = await ParallelTrainer.create(pool, model, { optimizer: { kind: 'sgd', momentum: 0 } });
  try {
    const update = await trainer.computeUpdate(flat(batch));
    const a = await referenceGradients(refA, halfA);
    const b = await referenceGradients(refB, halfB);
    const { trainable, nonTrainable } = trainer.layout;
    expect(trainable.names).toEqual(model.trainableWeights.map((w) => w.originalName));
    let worst = 0;
    let scale = 0;
    a.grads.forEach((ga, i) => {
      const expected = ga.map((v, k) => (v + b.grads[i][k]) / 2);
      const got = update.gradients.subarray(trainable.offsets[i], trainable.offsets[i + 1]);
      worst = Math.max(worst, maxAbsDiff(got, expected));
      scale = Math.max(scale, ...expected.map(Math.abs));
    });
    expect(scale).toBeGreaterThan(1e-3); // the gradient is not trivially zero
    expect(worst).toBeLessThan(1e-4);
    // Moving statistics: the average of what each half did to its own copy.
    a.stats.forEach((sa, i) => {
      const expected = sa.map((v, k) => (v + b.stats[i][k]) / 2);
      expect(maxAbsDiff(update.nonTrainable.subarray(nonTrainable.offsets[i], nonTrainable.offsets[i + 1]), expected)).toBeLessThan(1e-5);
    });

    // Plain SGD step: every replica holds w − lr·ḡ and the averaged statistics.
    const lr = 0.1;
    const before = await Promise.all(model.weights.map(async (w) => (await w.read().data()) as Float32Array));
    await trainer.applyUpdate(update, lr);
    const w0 = await trainer.replicaWeights(0);
    const w1 = await trainer.replicaWeights(1);
    expect(maxAbsDiff(w0, w1)).toBe(0);
    await trainer.copyWeightsTo(model);
    for (const [i, w] of model.weights.entries()) {
      const after = (await w.read().data()) as Float32Array;
      const t = trainable.names.indexOf(w.originalName);
      const s = nonTrainable.names.indexOf(w.originalName);
      const expected =
        t >= 0
          ? before[i].map((v, k) => v - lr * update.gradients[trainable.offsets[t] + k])
          : update.nonTrainable.subarray(nonTrainable.offsets[s], nonTrainable.offsets[s + 1]);
      expect(maxAbsDiff(after, expected)).toBeLessThan(1e-6);
    }
  } finally {
    await trainer.dispose();
    [model, refA, refB].forEach((m) => m.dispose());
  }
});

test('tensors in the workers stay flat across steps', async () => {
  const model = buildModel(LENET, 3);
  const trainer = await ParallelTrainer.create(pool, model, { optimizer: { kind: 'adam' } });
  try {
    const batch = flat(mnistSample(100, 132));
    await trainer.step(batch, 1e-3);
    const after1 = await pool.stats();
    for (let i = 0; i < 4; i++) await trainer.step(batch, 1e-3);
    const after5 = await pool.stats();
    expect(after5.map((s) => s.numTensors)).toEqual(after1.map((s) => s.numTensors));
    expect(after5.every((s) => s.backend === 'wasm')).toBe(true);
  } finally {
    await trainer.dispose();
    model.dispose();
  }
  // Disposing frees the replicas' weights and optimizer state.
  const afterDispose = await pool.stats();
  expect(afterDispose.every((s) => s.numTensors === 0)).toBe(true);
});

test('a short data-parallel run on real MNIST learns', async () => {
  const train = mnistSample(0, 3000);
  const test = mnistSample(3000, 4000);
  const model = buildModel(LENET, 11);
  const summary = await trainClassifierInParallel(pool, model, train, { epochs: 2, batchSize: 64, optimizer: 'adam', learningRate: 2e-3, seed: 5 });
  expect(summary.steps).toBe(2 * Math.floor(3000 / 64));
  expect(summary.losses[summary.losses.length - 1]).toBeLessThan(summary.losses[0]);
  const evaluation = await evaluateClassifier(model, test);
  expect(evaluation.top1).toBeGreaterThan(0.8); // chance is 0.1
  model.dispose();
});

test('an unknown loss name is refused before any worker is touched', async () => {
  const model = buildModel(LENET, 1);
  await expect(ParallelTrainer.create(pool, model, { optimizer: { kind: 'sgd' }, loss: 'mse' as never })).rejects.toThrow(UnknownTrainingLossError);
  model.dispose();
});

test('options the parallel trainer does not support are refused with a pointer to trainClassifier', async () => {
  const model = buildModel(LENET, 1);
  const data = mnistSample(0, 64);
  await expect(trainClassifierInParallel(pool, model, data, { epochs: 1, batchSize: 32, optimizer: 'sgd', learningRate: 0.1, seed: 1, augment: { flip: true } })).rejects.toThrow(/trainClassifier/);
  model.dispose();
  expect((await pool.stats()).every((s) => s.numTensors === 0)).toBe(true);
});
