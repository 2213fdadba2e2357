import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { SeededRandom } from '../../src/core/random';
import { buildSmallConvNet, gaussianValues, onBackend, relativeMaxError, take } from './support';

const INPUT: [number, number, number] = [13, 13, 3];
const BATCH = 4;
const CLASSES = 3;

const xValues = gaussianValues(BATCH * 13 * 13 * 3, 5);
const labels = [0, 2, 1, 2];

/** Cross-entropy of the net in training mode (BatchNorm on batch statistics, as when training). */
function loss(model: tf.LayersModel, x: tf.Tensor): tf.Scalar {
  const logits = model.apply(x, { training: true }) as tf.Tensor;
  return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, CLASSES), logits) as tf.Scalar;
}

interface Gradients {
  weights: Float32Array[];
  params: Float32Array[];
  input: Float32Array;
  names: string[];
}

/** Builds the net on the current backend with the given weights and returns loss gradients as arrays. */
function gradientsOnCurrentBackend(weightValues: Float32Array[] | undefined): Gradients {
  const model = buildSmallConvNet({ inputShape: INPUT, numClasses: CLASSES, seed: 3 });
  if (weightValues !== undefined) {
    model.setWeights(model.weights.map((w, i) => tf.tensor(weightValues[i], w.shape as number[])));
  }
  const weights = model.weights.map((w) => take(w.read().clone()));
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = tf.tensor4d(xValues, [BATCH, ...INPUT]);
  const { grads } = tf.variableGrads(() => loss(model, x), vars);
  const params = vars.map((v) => take(grads[v.name]));
  const input = take(tf.grad((xx: tf.Tensor) => loss(model, xx))(x));
  x.dispose();
  const names = vars.map((v) => v.name);
  model.dispose();
  return { weights, params, input, names };
}

beforeAll(async () => {
  await initTensorBackend('wasm');
});

test('a small conv net has the same parameter and input gradients on wasm as on cpu', async () => {
  const wasm = await onBackend('wasm', () => gradientsOnCurrentBackend(undefined));
  const cpu = await onBackend('cpu', () => gradientsOnCurrentBackend(wasm.weights));
  await tf.setBackend('wasm');
  expect(wasm.params.length).toBe(cpu.params.length);
  wasm.params.forEach((g, i) => {
    expect({ name: wasm.names[i], error: relativeMaxError(g, cpu.params[i]) < 1e-4 }).toEqual({ name: wasm.names[i], error: true });
  });
  expect(relativeMaxError(wasm.input, cpu.input)).toBeLessThan(1e-4);
});

test('wasm parameter gradients match central finite differences along random directions', async () => {
  await tf.setBackend('wasm');
  const model = buildSmallConvNet({ inputShape: INPUT, numClasses: CLASSES, seed: 3 });
  const x = tf.tensor4d(xValues, [BATCH, ...INPUT]);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(() => loss(model, x), vars);
  value.dispose();
  const random = new SeededRandom(17);
  const eps = 1e-2;
  for (const v of vars) {
    // One random unit direction per parameter tensor checks each tensor's gradient on its own.
    const direction = tf.tidy(() => {
      const d = tf.tensor(gaussianValues(v.size, random.deriveSeed()), v.shape);
      return tf.div(d, tf.norm(d));
    });
    const analytic = tf.tidy(() => tf.sum(tf.mul(grads[v.name], direction)).dataSync()[0]);
    const original = v.clone();
    const lossAt = (sign: number) => {
      v.assign(tf.tidy(() => tf.add(original, tf.mul(direction, sign * eps))));
      return tf.tidy(() => loss(model, x).dataSync()[0]);
    };
    const numeric = (lossAt(1) - lossAt(-1)) / (2 * eps);
    v.assign(original);
    tf.dispose([original, direction]);
    expect({ name: v.name, close: Math.abs(analytic - numeric) <= 2e-3 + 2e-2 * Math.abs(numeric) }).toEqual({ name: v.name, close: true });
  }
  tf.dispose(grads);
  x.dispose();
  model.dispose();
});
