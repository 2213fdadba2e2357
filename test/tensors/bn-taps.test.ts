import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { batchMoments, bnStatisticsLoss, tapBatchNormInputs, BnTapError } from '../../src/core/tensors/bn-taps';
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
