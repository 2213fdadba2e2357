import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { batchMoments, batchNormTraining, FastTrainingBatchNormalization } from '../../src/core/tensors/batch-norm-training';
import { channelAffineOfFinite } from '../../src/core/tensors/channel-affine';
import { buildModel } from '../../src/core/models/zoo';
import { expectMatchesCentralDifferences, gaussianValues, onBackend, relativeMaxError, sizeOf } from './support';

const SHAPES = [
  [8, 6, 6, 5],
  [4, 16, 16, 16], // large enough for the wasm channel paths
  [32, 12],
];

interface LayerResult {
  y: Float32Array;
  dx: Float32Array;
  dGamma: Float32Array;
  dBeta: Float32Array;
  movingMean: Float32Array;
  movingVariance: Float32Array;
}

/**
 * One training-mode forward and backward of a BatchNorm layer (fast or tfjs-layers' own) with the
 * same weights: output, gradients of Σ probe·y² (nonlinear, so the statistics' gradients matter)
 * and the moving statistics after the step.
 */
function layerStep(layer: tf.layers.Layer, shape: number[], xValues: Float32Array): LayerResult {
  const channels = shape[shape.length - 1];
  layer.build(shape);
  const init = [gaussianValues(channels, 2), gaussianValues(channels, 3), gaussianValues(channels, 4), gaussianValues(channels, 5).map((v) => 0.5 + v * v)];
  const initial = init.map((v) => tf.tensor1d(v));
  layer.setWeights(initial);
  tf.dispose(initial);
  const probe = tf.tensor(gaussianValues(sizeOf(shape), 6), shape);
  const x = tf.tensor(xValues, shape);
  const y = tf.tidy(() => layer.apply(x, { training: true }) as tf.Tensor);
  const loss = (xx: tf.Tensor) => tf.sum(tf.mul(probe, tf.square(layer.apply(xx, { training: true }) as tf.Tensor))) as tf.Scalar;
  // Gradients with respect to x and the layer's trainable weights, as the trainers take them.
  const { grads } = tf.variableGrads(() => loss(x), layer.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val));
  const dx = tf.grad((xx: tf.Tensor) => loss(xx))(x);
  const weights = layer.getWeights();
  const read = (t: tf.Tensor) => Float32Array.from(t.dataSync() as Float32Array);
  const result = {
    y: read(y),
    dx: read(dx),
    dGamma: read(Object.values(grads)[0]),
    dBeta: read(Object.values(grads)[1]),
    movingMean: read(weights[2]),
    movingVariance: read(weights[3]),
  };
  tf.dispose([probe, x, y, dx, ...Object.values(grads)]);
  layer.weights.forEach((w) => w.dispose());
  return result;
}

const fastLayer = () => new FastTrainingBatchNormalization({ axis: -1, momentum: 0.9, epsilon: 1e-3 });
const tfjsLayer = () => tf.layers.batchNormalization({ axis: -1, momentum: 0.9, epsilon: 1e-3 });

beforeAll(async () => {
  expect((await initTensorBackend('wasm')).name).toBe('wasm');
});

describe('training-mode BatchNorm with a closed-form gradient', () => {
  test('the zoo builds it, and saved models load into it', () => {
    const model = buildModel({ architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 0.5 }, 1);
    const bns = model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
    expect(bns.length).toBe(4);
    for (const layer of bns) expect(layer).toBeInstanceOf(FastTrainingBatchNormalization);
    const restored = tf.models.modelFromJSON({ modelTopology: model.toJSON(null, false) as never } as never) as unknown as Promise<tf.LayersModel>;
    return restored.then((m) => {
      expect(m.layers.filter((l) => l.getClassName() === 'BatchNormalization').every((l) => l instanceof FastTrainingBatchNormalization)).toBe(true);
      m.dispose();
      model.dispose();
    });
  });

  test.each(SHAPES.map((shape) => ({ shape })))('same output, gradients and moving statistics as tfjs-layers’ own, on cpu and wasm: $shape', async ({ shape }) => {
    const xValues = gaussianValues(sizeOf(shape), 1).map((v) => 3 + 2 * v); // an offset mean, as real activations have
    for (const backend of ['cpu', 'wasm'] as const) {
      const ours = await onBackend(backend, () => layerStep(fastLayer(), shape, xValues));
      const theirs = await onBackend(backend, () => layerStep(tfjsLayer(), shape, xValues));
      for (const key of Object.keys(ours) as (keyof LayerResult)[]) {
        expect({ key, backend, error: relativeMaxError(ours[key], theirs[key]) < 1e-5 }).toEqual({ key, backend, error: true });
      }
    }
    await tf.setBackend('wasm');
  });

  test('its gradients match central finite differences (wasm, through the depthwise path)', async () => {
    await tf.setBackend('wasm');
    const shape = [4, 3, 3, 5];
    const axes = [0, 1, 2];
    const x = tf.tensor(gaussianValues(sizeOf(shape), 11), shape);
    const gamma = tf.tensor1d(gaussianValues(5, 12));
    const beta = tf.tensor1d(gaussianValues(5, 13));
    const probe = tf.tensor(gaussianValues(sizeOf(shape), 14), shape);
    const f = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Scalar =>
      tf.tidy(() => {
        const { mean, variance } = tf.moments(xx, axes);
        return tf.mean(tf.square(tf.sub(batchNormTraining(xx, g, b, mean, variance, 1e-3), probe)));
      });
    expectMatchesCentralDifferences(f, [x, gamma, beta], 15);
    tf.dispose([x, gamma, beta, probe]);
  });

  test('a NaN or ∞ in the input or the upstream gradient comes out as tfjs-layers gives it (wasm)', async () => {
    const shape = [4, 16, 16, 16];
    const xValues = gaussianValues(sizeOf(shape), 21);
    xValues[100] = NaN;
    xValues[5000] = Infinity;
    const nonFinite = (v: Float32Array) => Array.from(v, (e) => (Number.isFinite(e) ? 'finite' : String(e)));
    const ours = await onBackend('wasm', () => layerStep(fastLayer(), shape, xValues));
    const theirs = await onBackend('wasm', () => layerStep(tfjsLayer(), shape, xValues));
    expect(nonFinite(ours.y)).toEqual(nonFinite(theirs.y));
    expect(nonFinite(ours.dx)).toEqual(nonFinite(theirs.dx));
    expect(ours.y.some(Number.isNaN)).toBe(true);
    // Finite input, non-finite upstream gradient.
    await tf.setBackend('wasm');
    const dxWith = (layer: tf.layers.Layer) =>
      tf.tidy(() => {
        layer.build(shape);
        const upstream = tf.tensor(gaussianValues(sizeOf(shape), 22).map((v, i) => (i === 77 ? NaN : v)), shape);
        const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(upstream, layer.apply(xx, { training: true }) as tf.Tensor)))(tf.tensor(gaussianValues(sizeOf(shape), 23), shape));
        return nonFinite(Float32Array.from(g.dataSync() as Float32Array));
      });
    expect(dxWith(fastLayer())).toEqual(dxWith(tfjsLayer()));
  });

  test('inference mode is tfjs-layers’ own code path', async () => {
    await tf.setBackend('wasm');
    const shape = [8, 6, 6, 5];
    const x = tf.tensor(gaussianValues(sizeOf(shape), 31), shape);
    const run = (layer: tf.layers.Layer) => {
      layer.build(shape);
      const weights = [gaussianValues(5, 2), gaussianValues(5, 3), gaussianValues(5, 4), gaussianValues(5, 5).map((v) => 0.5 + v * v)].map((v) => tf.tensor1d(v));
      layer.setWeights(weights);
      tf.dispose(weights);
      return tf.tidy(() => Float32Array.from((layer.apply(x, { training: false }) as tf.Tensor).dataSync() as Float32Array));
    };
    expect(Array.from(run(fastLayer()))).toEqual(Array.from(run(tfjsLayer())));
    x.dispose();
  });

  test('batchMoments gives tf.moments’ values exactly, and x − μ (wasm and cpu)', async () => {
    for (const backend of ['wasm', 'cpu'] as const) {
      for (const shape of [[4, 16, 16, 16], [32, 12]]) {
        const [ours, theirs] = await onBackend(backend, () =>
          tf.tidy(() => {
            const x = tf.tensor(gaussianValues(sizeOf(shape), 61).map((v) => 5 + v), shape);
            const axes = shape.slice(0, -1).map((_, i) => i);
            const m = batchMoments(x);
            const t = tf.moments(x, axes);
            const read = (u: tf.Tensor) => Array.from(u.dataSync());
            return [
              [read(m.mean), read(m.variance), read(m.centred)],
              [read(t.mean), read(t.variance), read(tf.sub(x, t.mean))],
            ];
          }),
        );
        expect(ours).toEqual(theirs);
      }
    }
    await tf.setBackend('wasm');
  });

  test('channelAffineOfFinite is x·w + b per channel on wasm and cpu', async () => {
    for (const backend of ['wasm', 'cpu'] as const) {
      const out = await onBackend(backend, () =>
        tf.tidy(() => {
          const x = tf.tensor(gaussianValues(4 * 8 * 8 * 6, 41), [4, 8, 8, 6]);
          const w = tf.tensor1d(gaussianValues(6, 42));
          const b = tf.tensor1d(gaussianValues(6, 43));
          return [channelAffineOfFinite(x, w, b), tf.add(tf.mul(x, w), b), channelAffineOfFinite(x, w), tf.mul(x, w)].map((t) => Float32Array.from(t.dataSync() as Float32Array));
        }),
      );
      expect(relativeMaxError(out[0], out[1])).toBeLessThan(1e-6);
      expect(relativeMaxError(out[2], out[3])).toBeLessThan(1e-6);
    }
    await tf.setBackend('wasm');
  });

  test('tensor memory stays flat over training steps', async () => {
    await tf.setBackend('wasm');
    const shape = [8, 16, 16, 16];
    const layer = fastLayer();
    layer.build(shape);
    const x = tf.tensor(gaussianValues(sizeOf(shape), 51), shape);
    const params = layer.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar, params);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    layer.weights.forEach((w) => w.dispose());
  });
});
