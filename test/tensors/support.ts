import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../../src/core/random';

/** Gaussian values from a seed, as a plain array so they can be moved between backends. */
export function gaussianValues(size: number, seed: number): Float32Array {
  const random = new SeededRandom(seed);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = random.gaussian();
  return values;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Runs `f` on the named backend and returns its result as arrays; the backend stays switched. */
export async function onBackend<T>(name: 'cpu' | 'wasm', f: () => T): Promise<T> {
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} did not start`);
  return f();
}

/** Copies a tensor's values out and disposes it. */
export function take(t: tf.Tensor): Float32Array {
  const values = t.dataSync() as Float32Array;
  t.dispose();
  return Float32Array.from(values);
}

/** Largest |a − b| relative to the largest |b| (or 1 when b is tiny). */
export function relativeMaxError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    maxRef = Math.max(maxRef, Math.abs(b[i]));
  }
  return maxDiff / Math.max(maxRef, 1);
}

/**
 * Checks tf.grads of the scalar function `f` against central finite differences along one random
 * unit direction per input (directions drawn from `seed`): |analytic − numeric| < 2e-4 + 1e-2·|numeric|.
 */
export function expectMatchesCentralDifferences(f: (...inputs: tf.Tensor[]) => tf.Scalar, inputs: tf.Tensor[], seed: number, eps = 1e-2): void {
  const grads = tf.grads(f)(inputs);
  const random = new SeededRandom(seed);
  inputs.forEach((t, which) => {
    const d = tf.tidy(() => {
      const v = tf.tensor(gaussianValues(t.size, random.deriveSeed()), t.shape);
      return tf.div(v, tf.norm(v));
    });
    const at = (sign: number) =>
      tf.tidy(() => {
        const args = inputs.map((u, i) => (i === which ? tf.add(u, tf.mul(d, sign * eps)) : u));
        return f(...args).dataSync()[0];
      });
    const numeric = (at(1) - at(-1)) / (2 * eps);
    const analytic = tf.tidy(() => tf.sum(tf.mul(grads[which], d)).dataSync()[0]);
    d.dispose();
    expect(Math.abs(analytic - numeric)).toBeLessThan(2e-4 + 1e-2 * Math.abs(numeric));
  });
  tf.dispose(grads);
}

export interface SmallNetOptions {
  inputShape: [number, number, number];
  numClasses: number;
  seed: number;
  dropout?: number;
}

/**
 * A small conv net with what the zoo's nets use: conv (stride 1 and 2, same and valid), BatchNorm,
 * ReLU, a residual Add, max and average pooling, global average pooling, Dropout, Dense.
 */
export function buildSmallConvNet(o: SmallNetOptions): tf.LayersModel {
  let seed = o.seed;
  const init = () => tf.initializers.heNormal({ seed: seed++ });
  type Sym = tf.SymbolicTensor;
  const input = tf.input({ shape: o.inputShape });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init() }).apply(input) as Sym;
  x = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }).apply(x) as Sym;
  x = tf.layers.reLU().apply(x) as Sym;
  let y = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: init() }).apply(x) as Sym;
  y = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }).apply(y) as Sym;
  x = tf.layers.add().apply([x, y]) as Sym;
  x = tf.layers.reLU().apply(x) as Sym;
  x = tf.layers.maxPooling2d({ poolSize: 2 }).apply(x) as Sym;
  x = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'valid', kernelInitializer: init() }).apply(x) as Sym;
  x = tf.layers.averagePooling2d({ poolSize: 2, strides: 1 }).apply(x) as Sym;
  x = tf.layers.conv2d({ filters: 8, kernelSize: 1, strides: 2, padding: 'same', useBias: false, kernelInitializer: init() }).apply(x) as Sym;
  x = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }).apply(x) as Sym;
  x = tf.layers.reLU().apply(x) as Sym;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as Sym;
  if (o.dropout !== undefined) x = tf.layers.dropout({ rate: o.dropout, seed: seed++ }).apply(x) as Sym;
  const logits = tf.layers.dense({ units: o.numClasses, kernelInitializer: tf.initializers.glorotUniform({ seed: seed++ }) }).apply(x) as Sym;
  return tf.model({ inputs: input, outputs: logits });
}

/** Runs `step` once to warm up, then `repeats` more times, and expects no tensors to be left over by them. */
export function expectTensorCountFlat(step: () => void, repeats = 2): void {
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < repeats; i++) step();
  expect(tf.memory().numTensors).toBe(before);
}
