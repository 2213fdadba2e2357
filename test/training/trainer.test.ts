import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { buildModel } from '../../src/core/models/zoo';
import type { ModelSpec } from '../../src/core/models/model-spec';
import { StageCancelledError } from '../../src/core/plugins/contracts';
import { evaluateClassifier } from '../../src/core/training/evaluator';
import { crossEntropy, learningRateAt, trainClassifier, TrainingDivergedError, TrainingInputError, type TrainOptions } from '../../src/core/training/trainer';
import { mnistSample } from './mnist-sample';

const student: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 0.5 };
const sgd: TrainOptions = { epochs: 1, batchSize: 32, optimizer: 'sgd', learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine', seed: 1 };

// tfjs' cpu backend takes seconds per conv filter gradient; wasm (with Condense's filter-gradient
// kernel) trains these nets in milliseconds per step.
beforeAll(async () => {
  await initTensorBackend('wasm');
});

describe('trainClassifier on real MNIST', () => {
  it('a half-width LeNet-5-BN trained for one epoch on 2,000 digits classifies 1,000 others well above chance', async () => {
    const train = mnistSample(0, 2000);
    const test = mnistSample(2000, 3000);
    const model = buildModel(student, 0);
    const before = await evaluateClassifier(model, test);
    const summary = await trainClassifier(model, train, { ...sgd, augment: { cropPadding: 2 } });
    const after = await evaluateClassifier(model, test);
    expect(summary.steps).toBe(Math.floor(2000 / 32));
    expect(summary.losses[summary.losses.length - 1]).toBeLessThan(summary.losses[0]);
    // Chance is 10%; one short epoch of a 15k-parameter net gets far past it.
    expect(before.top1).toBeLessThan(0.3);
    expect(after.top1).toBeGreaterThan(0.8);
    expect(after.top5).toBeGreaterThan(after.top1);
    model.dispose();
  });
});

describe('trainClassifier mechanics', () => {
  const small = () => mnistSample(3000, 3128);

  it('is seeded-deterministic: same seed, same loss sequence; other seed, other sequence', async () => {
    const run = async (seed: number) => {
      const model = buildModel(student, 5);
      const s = await trainClassifier(model, small(), { ...sgd, batchSize: 16, seed, augment: { flip: true, cropPadding: 2 } });
      model.dispose();
      return s.losses;
    };
    const a = await run(1);
    const b = await run(1);
    const c = await run(2);
    expect(a).toHaveLength(8);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('keeps tf.memory().numTensors flat across steps and frees everything it made', async () => {
    const model = buildModel(student, 0);
    const start = tf.memory().numTensors;
    const counts: number[] = [];
    await trainClassifier(model, small(), { ...sgd, optimizer: 'adam', learningRate: 1e-3, batchSize: 16, epochs: 2 }, {
      onStep: () => counts.push(tf.memory().numTensors),
    });
    expect(counts).toHaveLength(16);
    expect(new Set(counts).size).toBe(1);
    expect(tf.memory().numTensors).toBe(start);
    model.dispose();
  });

  it('hands scalars kept by the loss (batch.keepMetric) to onStep, read after the step, with memory flat', async () => {
    const model = buildModel(student, 0);
    const start = tf.memory().numTensors;
    const seen: Array<{ loss: number; extra?: Record<string, number> }> = [];
    const counts: number[] = [];
    await trainClassifier(model, small(), { ...sgd, batchSize: 16 }, {
      batchLoss: (batch) => {
        const logits = model.apply(batch.images, { training: true }) as tf.Tensor2D;
        const ce = crossEntropy(logits, batch.labels);
        const half = tf.mul(ce, 0.5) as tf.Scalar;
        batch.keepMetric('ce', ce);
        batch.keepMetric('half', half);
        // Keeping a name twice keeps the last value.
        batch.keepMetric('half', half);
        return ce;
      },
      onStep: (_step, _total, m) => {
        seen.push({ loss: m.loss, extra: m.extra });
        counts.push(tf.memory().numTensors);
      },
    });
    expect(seen).toHaveLength(8);
    for (const s of seen) {
      expect(s.extra?.ce).toBeCloseTo(s.loss, 5);
      expect(s.extra?.half).toBeCloseTo(s.loss / 2, 5);
    }
    expect(new Set(counts).size).toBe(1);
    expect(tf.memory().numTensors).toBe(start);
    model.dispose();
  });

  it('runs BatchNorm in training mode and updates its moving statistics with momentum 0.9', async () => {
    const data = mnistSample(0, 16);
    const model = buildModel(student, 0);
    // conv1 feeds bn1 directly; its output on the batch (before the update) gives the batch statistics.
    const conv1 = tf.model({ inputs: model.inputs, outputs: model.getLayer('conv1').output as tf.SymbolicTensor });
    const x = tf.tensor4d(data.images, [16, 28, 28, 1]);
    const { mean, variance } = tf.moments(conv1.predict(x) as tf.Tensor, [0, 1, 2]);
    const batchMean = Array.from(mean.dataSync());
    const batchVar = Array.from(variance.dataSync());
    await trainClassifier(model, data, { ...sgd, batchSize: 16 });
    const [movingMean, movingVar] = model.getLayer('bn1').getWeights().slice(2).map((t) => Array.from(t.dataSync()));
    batchMean.forEach((m, i) => expect(movingMean[i]).toBeCloseTo(0.9 * 0 + 0.1 * m, 5));
    batchVar.forEach((v, i) => expect(movingVar[i]).toBeCloseTo(0.9 * 1 + 0.1 * v, 5));
    tf.dispose([x, mean, variance]);
    model.dispose();
  });

  it('throws TrainingDivergedError with the step when the loss turns NaN, leaving finite weights', async () => {
    const model = buildModel(student, 0);
    let calls = 0;
    const err = await trainClassifier(model, small(), { ...sgd, batchSize: 16 }, {
      lossFn: (logits, batch) => {
        calls += 1;
        const ce = crossEntropy(logits, batch.labels);
        return calls === 3 ? tf.mul(ce, NaN) : ce;
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingDivergedError);
    expect((err as TrainingDivergedError).step).toBe(3);
    expect((err as Error).message).toMatch(/step 3/);
    for (const w of model.getWeights()) expect(w.dataSync().every(Number.isFinite)).toBe(true);
    model.dispose();
  });

  it('stops with StageCancelledError when the signal is aborted, without leaking tensors', async () => {
    const model = buildModel(student, 0);
    const start = tf.memory().numTensors;
    const controller = new AbortController();
    const steps: number[] = [];
    const run = trainClassifier(model, small(), { ...sgd, batchSize: 16 }, {
      signal: controller.signal,
      onStep: (step) => {
        steps.push(step);
        if (step === 2) controller.abort();
      },
    });
    await expect(run).rejects.toBeInstanceOf(StageCancelledError);
    expect(steps).toEqual([1, 2]);
    expect(tf.memory().numTensors).toBe(start);
    model.dispose();
  });

  it('gives a custom lossFn the batch images, labels and their data-set indices', async () => {
    const data = small();
    const model = buildModel(student, 0);
    const seen = new Set<number>();
    await trainClassifier(model, data, { ...sgd, batchSize: 16 }, {
      lossFn: (logits, batch) => {
        const labels = batch.labels.arraySync();
        const images = batch.images.arraySync() as number[][][][];
        batch.indices.forEach((j, i) => {
          seen.add(j);
          expect(labels[i]).toBe(data.labels[j]);
          expect(images[i][14][14][0]).toBeCloseTo(data.images[j * 784 + 14 * 28 + 14], 6);
        });
        return crossEntropy(logits, batch.labels);
      },
    });
    expect(seen.size).toBe(128); // one epoch visits every image once
    model.dispose();
  });

  it('keeps masked weights at exactly zero', async () => {
    const model = buildModel(student, 0);
    const kernelSize = 5 * 5 * 1 * 3;
    const mask = Uint8Array.from({ length: kernelSize }, (_, i) => (i % 2 === 0 ? 1 : 0));
    await trainClassifier(model, small(), { ...sgd, batchSize: 16, masks: { 'conv1/kernel': mask } });
    const kernel = model.getLayer('conv1').getWeights()[0].dataSync();
    // Pruned weights may read as −0 (0 · negative); both count as zero.
    kernel.forEach((v, i) => expect(v === 0).toBe(mask[i] === 0));
    model.dispose();
  });

  it('rejects data that does not fit the model and bad options', async () => {
    const model = buildModel({ ...student, inputShape: [32, 32, 1] }, 0);
    await expect(trainClassifier(model, small(), sgd)).rejects.toThrow(/takes images \[32,32,1\] but the data set holds \[28,28,1\]/);
    model.dispose();
    const lenet = buildModel(student, 0);
    await expect(trainClassifier(lenet, small(), { ...sgd, learningRate: -1 })).rejects.toBeInstanceOf(TrainingInputError);
    await expect(trainClassifier(lenet, small(), { ...sgd, optimizer: 'rmsprop' as never })).rejects.toThrow(/"sgd" or "adam"/);
    lenet.dispose();
  });
});

describe('learningRateAt', () => {
  it('follows a cosine from the peak to zero after a linear warm-up', () => {
    const o = { learningRate: 0.1, schedule: 'cosine' as const, warmupSteps: 10 };
    expect(learningRateAt(0, 110, o)).toBeCloseTo(0.01, 12);
    expect(learningRateAt(9, 110, o)).toBeCloseTo(0.1, 12);
    expect(learningRateAt(10, 110, o)).toBeCloseTo(0.1, 12);
    expect(learningRateAt(60, 110, o)).toBeCloseTo(0.05, 12); // cos(π/2) = 0
    expect(learningRateAt(85, 110, o)).toBeCloseTo(0.05 * (1 + Math.cos(0.75 * Math.PI)), 12);
    expect(learningRateAt(37, 110, { learningRate: 0.1, schedule: 'constant' })).toBe(0.1);
  });
});
