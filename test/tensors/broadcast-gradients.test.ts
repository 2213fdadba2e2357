import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { BROADCAST_GRADIENTS, originalGradient } from '../../src/core/tensors/broadcast-gradients';
import { expectMatchesCentralDifferences, gaussianValues, onBackend, relativeMaxError, take } from './support';

/** Runs `f` with tfjs-core's original gradients of FusedBatchNorm/Mean/Sum, then puts ours back. */
function withOriginalGradients<T>(f: () => T): T {
  for (const config of BROADCAST_GRADIENTS) tf.registerGradient(originalGradient(config.kernelName)!);
  try {
    return f();
  } finally {
    for (const config of BROADCAST_GRADIENTS) tf.registerGradient(config);
  }
}

interface BnCase {
  shape: number[];
  training: boolean;
}

const BN_CASES: BnCase[] = [
  { shape: [3, 5, 4, 6], training: true },
  { shape: [3, 5, 4, 6], training: false },
  { shape: [7, 5], training: true },
  { shape: [4, 3, 3, 2], training: false },
];

/**
 * Gradients of Σ probe·batchNorm(x) w.r.t. x, gamma, beta (and the statistics when they are inputs):
 * in training mode the statistics are tf.moments of x, as tfjs-layers computes them.
 */
function bnGradients(c: BnCase): Float32Array[] {
  const channels = c.shape[c.shape.length - 1];
  const axes = c.shape.slice(0, -1).map((_, i) => i);
  return tf.tidy(() => {
    const x = tf.tensor(gaussianValues(c.shape.reduce((a, b) => a * b), 1), c.shape);
    const gamma = tf.tensor1d(gaussianValues(channels, 2));
    const beta = tf.tensor1d(gaussianValues(channels, 3));
    const movingMean = tf.tensor1d(gaussianValues(channels, 4));
    const movingVariance = tf.abs(tf.tensor1d(gaussianValues(channels, 5))).add(0.5);
    const probe = tf.tensor(gaussianValues(x.size, 6), c.shape);
    if (c.training) {
      const f = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(xx, axes);
        return tf.sum(tf.mul(tf.batchNorm(xx, mean, variance, b as tf.Tensor1D, g as tf.Tensor1D, 1e-3), probe));
      };
      return tf.grads(f)([x, gamma, beta]).map(take);
    }
    const f = (xx: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.batchNorm(xx, m as tf.Tensor1D, v as tf.Tensor1D, b as tf.Tensor1D, g as tf.Tensor1D, 1e-3), probe));
    return tf.grads(f)([x, movingMean, movingVariance, gamma, beta]).map(take);
  });
}

beforeAll(async () => {
  await initTensorBackend('wasm');
});

describe('broadcasting FusedBatchNorm gradient', () => {
  test('replaces tfjs-core\'s gradients', () => {
    for (const config of BROADCAST_GRADIENTS) {
      expect(tf.getGradient(config.kernelName)).toBe(config);
      expect(originalGradient(config.kernelName)).not.toBe(config);
    }
  });

  test.each(BN_CASES)('same gradients as tfjs-core\'s on cpu and on wasm: $shape training $training', async (c) => {
    for (const backend of ['cpu', 'wasm'] as const) {
      const ours = await onBackend(backend, () => bnGradients(c));
      const theirs = await onBackend(backend, () => withOriginalGradients(() => bnGradients(c)));
      expect(ours.length).toBe(theirs.length);
      ours.forEach((g, i) => expect(relativeMaxError(g, theirs[i])).toBeLessThan(1e-5));
    }
    await tf.setBackend('wasm');
  });

  test('training-mode BN gradients match central finite differences on wasm', async () => {
    await tf.setBackend('wasm');
    const shape = [4, 3, 3, 5];
    const x = tf.tensor(gaussianValues(180, 11), shape);
    const gamma = tf.tensor1d(gaussianValues(5, 12));
    const beta = tf.tensor1d(gaussianValues(5, 13));
    const probe = tf.tensor(gaussianValues(180, 14), shape);
    // A nonlinear loss of the normalised output, so the statistics' gradients matter.
    const f = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Scalar =>
      tf.tidy(() => {
        const { mean, variance } = tf.moments(xx, [0, 1, 2]);
        return tf.mean(tf.square(tf.sub(tf.batchNorm(xx, mean, variance, b as tf.Tensor1D, g as tf.Tensor1D, 1e-3), probe)));
      });
    expectMatchesCentralDifferences(f, [x, gamma, beta], 15);
    tf.dispose([x, gamma, beta, probe]);
  });
});

describe('broadcasting Mean and Sum gradients', () => {
  const REDUCTIONS: { shape: number[]; axis: number[] | undefined; keepDims: boolean }[] = [
    { shape: [3, 4, 5, 2], axis: [0, 1, 2], keepDims: false },
    { shape: [3, 4, 5, 2], axis: [1], keepDims: true },
    { shape: [6, 7], axis: undefined, keepDims: false },
    { shape: [6, 7], axis: [-1], keepDims: false },
  ];

  function reductionGradients(r: (typeof REDUCTIONS)[number]): Float32Array[] {
    return tf.tidy(() => {
      const size = r.shape.reduce((a, b) => a * b);
      const x = tf.tensor(gaussianValues(size, 21), r.shape);
      const square = (t: tf.Tensor) => tf.sum(tf.square(t));
      return [
        take(tf.grad((xx: tf.Tensor) => square(tf.mean(xx, r.axis, r.keepDims)))(x)),
        take(tf.grad((xx: tf.Tensor) => square(tf.sum(xx, r.axis, r.keepDims)))(x)),
      ];
    });
  }

  test.each(REDUCTIONS)('same as tfjs-core\'s: shape $shape axis $axis keepDims $keepDims', async (r) => {
    for (const backend of ['cpu', 'wasm'] as const) {
      const ours = await onBackend(backend, () => reductionGradients(r));
      const theirs = await onBackend(backend, () => withOriginalGradients(() => reductionGradients(r)));
      ours.forEach((g, i) => expect(relativeMaxError(g, theirs[i])).toBeLessThan(1e-6));
    }
    await tf.setBackend('wasm');
  });

  test('mean gradient is dy / n in every element (hand-computed)', async () => {
    await tf.setBackend('wasm');
    const g = take(tf.tidy(() => tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.mean(xx, 0), tf.tensor1d([1, 2, 3]))))(tf.zeros([4, 3]))));
    expect(Array.from(g)).toEqual([0.25, 0.5, 0.75, 0.25, 0.5, 0.75, 0.25, 0.5, 0.75, 0.25, 0.5, 0.75]);
  });
});
