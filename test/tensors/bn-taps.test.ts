import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { batchMoments, bnStatisticsLoss, tapBatchNormInputs, BnTapError, type BnTap } from '../../src/core/tensors/bn-taps';
import { gaussianValues, relativeMaxError, take } from './support';

type Sym = tf.SymbolicTensor;

/** conv → BN → ReLU → flatten → dense → BN → dense: one BN on a 4-D input, one on a 2-D input. */
function twoBnNet() {
  const input = tf.input({ shape: [6, 6, 2] });
  const conv = tf.layers.conv2d({ filters: 3, kernelSize: 3, useBias: false, kernelInitializer: tf.initializers.heNormal({ seed: 1 }) });
  const bn1 = tf.layers.batchNormalization({ name: 'bn_a' });
  const dense1 = tf.layers.dense({ units: 5, kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) });
  const bn2 = tf.layers.batchNormalization({ name: 'bn_b' });
  const convOut = conv.apply(input) as Sym;
  let h = tf.layers.reLU().apply(bn1.apply(convOut) as Sym) as Sym;
  const denseOut = dense1.apply(tf.layers.flatten().apply(h) as Sym) as Sym;
  h = bn2.apply(denseOut) as Sym;
  const logits = tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotNormal({ seed: 3 }) }).apply(h) as Sym;
  const model = tf.model({ inputs: input, outputs: logits });
  // Non-trivial running statistics and affine parameters, so taps cannot pass by matching defaults.
  for (const [layer, channels, seed] of [[bn1, 3, 10], [bn2, 5, 20]] as const) {
    const [gamma, beta, mean, variance] = [0, 1, 2, 3].map((k) => gaussianValues(channels, seed + k));
    layer.setWeights([
      tf.tensor1d(gamma.map((g) => 1 + 0.3 * g)),
      tf.tensor1d(beta),
      tf.tensor1d(mean),
      tf.tensor1d(variance.map((v) => 0.5 + v * v)),
    ]);
  }
  const features = tf.model({ inputs: input, outputs: [convOut, denseOut] });
  return { model, features, bnLayers: [bn1, bn2] };
}

/** DeepInversion's loss computed in float64 from plain arrays: Σ ‖μ − μ_run‖ + ‖σ² − σ²_run‖. */
function referenceBnLoss(inputs: { values: Float32Array; channels: number }[], running: { mean: Float32Array; variance: Float32Array }[]): number {
  let total = 0;
  inputs.forEach(({ values, channels }, l) => {
    const n = values.length / channels;
    let meanTerm = 0;
    let varTerm = 0;
    for (let c = 0; c < channels; c++) {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += values[i * channels + c];
      const mean = sum / n;
      let sq = 0;
      for (let i = 0; i < n; i++) sq += (values[i * channels + c] - mean) ** 2;
      meanTerm += (mean - running[l].mean[c]) ** 2;
      varTerm += (sq / n - running[l].variance[c]) ** 2;
    }
    total += Math.sqrt(meanTerm) + Math.sqrt(varTerm);
  });
  return total;
}

beforeAll(async () => {
  await initTensorBackend('wasm');
});

describe('BatchNorm taps', () => {
  const x = () => tf.tensor4d(gaussianValues(4 * 6 * 6 * 2, 7), [4, 6, 6, 2]);

  test('return the logits and each BN layer’s input and running statistics', () => {
    const { model, features, bnLayers } = twoBnNet();
    const forward = tapBatchNormInputs(model);
    const input = x();
    for (const training of [false, true]) {
      const { logits, taps } = forward(input, { training });
      expect(taps.map((t) => t.layerName)).toEqual(['bn_a', 'bn_b']);
      const expectedLogits = model.apply(input, { training }) as tf.Tensor;
      expect(relativeMaxError(take(logits), take(expectedLogits))).toBeLessThan(1e-5);
      const [convOut, denseOut] = features.apply(input, { training }) as tf.Tensor[];
      expect(taps[0].input.shape).toEqual([4, 4, 4, 3]);
      expect(relativeMaxError(take(taps[0].input), take(convOut))).toBeLessThan(1e-6);
      expect(taps[1].input.shape).toEqual([4, 5]);
      expect(relativeMaxError(take(taps[1].input), take(denseOut))).toBeLessThan(1e-6);
      taps.forEach((tap, i) => {
        const weights = bnLayers[i].getWeights();
        expect(Array.from(tap.movingMean.dataSync())).toEqual(Array.from(weights[2].dataSync()));
        expect(Array.from(tap.movingVariance.dataSync())).toEqual(Array.from(weights[3].dataSync()));
      });
    }
    input.dispose();
  });

  test('bnStatisticsLoss matches a direct computation, and its input gradient matches finite differences', () => {
    const { model } = twoBnNet();
    const forward = tapBatchNormInputs(model);
    const input = x();
    const lossOf = (xx: tf.Tensor) => bnStatisticsLoss(forward(xx).taps);

    const { taps } = forward(input);
    const expected = referenceBnLoss(
      taps.map((t) => ({ values: t.input.dataSync() as Float32Array, channels: t.input.shape[t.input.rank - 1] })),
      taps.map((t) => ({ mean: t.movingMean.dataSync() as Float32Array, variance: t.movingVariance.dataSync() as Float32Array })),
    );
    tf.dispose(taps.map((t) => t.input));
    expect(lossOf(input).dataSync()[0]).toBeCloseTo(expected, 4);

    const before = tf.memory().numTensors;
    const gradient = tf.grad(lossOf)(input);
    const direction = tf.tensor(gaussianValues(input.size, 8), input.shape);
    const analytic = tf.tidy(() => tf.sum(tf.mul(gradient, direction)).dataSync()[0]);
    const eps = 1e-2;
    const at = (s: number) => tf.tidy(() => lossOf(tf.add(input, tf.mul(direction, s * eps))).dataSync()[0]);
    const numeric = (at(1) - at(-1)) / (2 * eps);
    expect(Math.abs(analytic)).toBeGreaterThan(1e-2);
    expect(Math.abs(analytic - numeric)).toBeLessThan(2e-2 * Math.abs(numeric) + 1e-3);
    tf.dispose([gradient, direction]);
    expect(tf.memory().numTensors).toBe(before);
    input.dispose();
  });

  test('a model without a single output is refused', () => {
    const input = tf.input({ shape: [3] });
    const a = tf.layers.dense({ units: 2 }).apply(input) as Sym;
    const b = tf.layers.dense({ units: 2 }).apply(input) as Sym;
    expect(() => tapBatchNormInputs(tf.model({ inputs: input, outputs: [a, b] }))).toThrow(BnTapError);
  });
});

describe('bnStatisticsLoss gradient', () => {
  /** The loss composed from tfjs ops (moments, norms and their tfjs gradients): the reference for the custom gradient. */
  const composed = (taps: BnTap[], weights: number[]) =>
    tf.addN(
      taps.map((tap, i) => {
        const axes = Array.from({ length: tap.input.rank - 1 }, (_, a) => a);
        const { mean, variance } = tf.moments(tap.input, axes);
        return tf.mul(tf.add(tf.norm(tf.sub(mean, tap.movingMean)), tf.norm(tf.sub(variance, tap.movingVariance))), weights[i]);
      }),
    ) as tf.Scalar;

  test('value and whole input gradient equal the tfjs-composed loss, with layer weights, on cpu and wasm', async () => {
    const { model } = twoBnNet();
    const forward = tapBatchNormInputs(model);
    const weights = [3, 0.5];
    for (const backend of ['cpu', 'wasm'] as const) {
      await tf.setBackend(backend);
      const [ours, reference] = tf.tidy(() => {
        const input = tf.tensor4d(gaussianValues(4 * 6 * 6 * 2, 17), [4, 6, 6, 2]);
        const run = (loss: (taps: BnTap[]) => tf.Scalar) => {
          const { value, grad } = tf.valueAndGrad((xx: tf.Tensor) => loss(forward(xx).taps))(input);
          return [take(value), take(grad)];
        };
        return [run((taps) => bnStatisticsLoss(taps, weights)), run((taps) => composed(taps, weights))];
      });
      expect(relativeMaxError(ours[0], reference[0])).toBeLessThan(1e-5);
      expect(relativeMaxError(ours[1], reference[1])).toBeLessThan(1e-4);
    }
    await tf.setBackend('wasm');
  });

  test('a layer whose batch mean equals its running mean adds no mean gradient, and nothing is NaN', () => {
    const values = gaussianValues(4 * 3 * 3 * 2, 41);
    const input = tf.tensor4d(values, [4, 3, 3, 2]);
    const { mean } = tf.moments(input, [0, 1, 2]);
    const variance = tf.tensor1d([0.7, 1.3]);
    const tap = (xx: tf.Tensor, movingMean: tf.Tensor1D): BnTap => ({ layerName: 'bn', input: xx, movingMean, movingVariance: variance });
    // Running mean equal to the batch mean: ‖dμ‖ = 0, its gradient taken as 0, so only the variance part remains.
    const ours = tf.grad((xx: tf.Tensor) => bnStatisticsLoss([tap(xx, mean as tf.Tensor1D)]))(input);
    const varianceOnly = tf.grad((xx: tf.Tensor) => {
      const { variance: v } = tf.moments(xx, [0, 1, 2]);
      return tf.norm(tf.sub(v, variance));
    })(input);
    const got = take(ours);
    expect(got.every(Number.isFinite)).toBe(true);
    expect(relativeMaxError(got, take(varianceOnly))).toBeLessThan(1e-4);
    tf.dispose([input, mean, variance, ours, varianceOnly]);
  });

  test('the loss and its input gradient take at most 35 kernel calls per BatchNorm layer (97 composed from tfjs ops)', async () => {
    const layers = 4;
    const inputs = Array.from({ length: layers }, (_, i) => tf.tensor4d(gaussianValues(2 * 4 * 4 * 3, 50 + i), [2, 4, 4, 3]));
    const stats = { movingMean: tf.zeros([3]) as tf.Tensor1D, movingVariance: tf.ones([3]) as tf.Tensor1D };
    const calls = async (loss: (taps: BnTap[]) => tf.Scalar) => {
      const profile = await tf.profile(() => {
        const grads = tf.grads((...xs: tf.Tensor[]) => loss(xs.map((input, i) => ({ layerName: `bn${i}`, input, ...stats }))))(inputs);
        tf.dispose(grads);
      });
      return profile.kernels.length;
    };
    const ours = await calls((taps) => bnStatisticsLoss(taps));
    const reference = await calls((taps) => composed(taps, taps.map(() => 1)));
    expect(ours).toBeLessThanOrEqual(35 * layers);
    expect(reference).toBeGreaterThan(2 * ours);
    tf.dispose([...inputs, stats.movingMean, stats.movingVariance]);
  });
});

describe('batchMoments', () => {
  test('same values and input gradient as tf.moments, on cpu and wasm', async () => {
    const shape = [6, 5, 4, 3];
    const values = gaussianValues(360, 31);
    const weights = [gaussianValues(3, 32), gaussianValues(3, 33)];
    const run = (moments: (x: tf.Tensor) => { mean: tf.Tensor; variance: tf.Tensor }) =>
      tf.tidy(() => {
        const x = tf.tensor(values, shape);
        // A nonlinear function of both statistics, so both gradient paths are exercised.
        const f = (xx: tf.Tensor) => {
          const { mean, variance } = moments(xx);
          return tf.add(tf.sum(tf.mul(tf.square(mean), weights[0])), tf.sum(tf.mul(tf.sqrt(variance), weights[1])));
        };
        const { mean, variance } = moments(x);
        return [take(mean), take(variance), take(tf.grad(f)(x))];
      });
    for (const backend of ['cpu', 'wasm'] as const) {
      await tf.setBackend(backend);
      const ours = run((x) => batchMoments(x, [0, 1, 2]));
      const reference = run((x) => tf.moments(x, [0, 1, 2]));
      ours.forEach((v, i) => expect(relativeMaxError(v, reference[i])).toBeLessThan(1e-5));
    }
    await tf.setBackend('wasm');
  });
});
