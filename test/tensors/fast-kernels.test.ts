import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { shippedWasmKernel, WASM_REPLACEMENT_KERNELS } from '../../src/core/tensors/wasm-kernels';
import { SeededRandom } from '../../src/core/random';
import { gaussianValues, onBackend, relativeMaxError, sizeOf, take } from './support';

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];

interface ConvCase {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: [number, number];
  pad: Pad;
}

const CONV_CASES: ConvCase[] = [
  { x: [2, 7, 7, 3], filter: [3, 3, 3, 4], strides: [1, 1], pad: 'same' },
  { x: [3, 8, 8, 2], filter: [3, 3, 2, 5], strides: [2, 2], pad: 'same' },
  { x: [3, 9, 9, 2], filter: [3, 3, 2, 5], strides: [2, 2], pad: 'same' },
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: [2, 2], pad: 'valid' },
  { x: [2, 9, 11, 3], filter: [3, 3, 3, 4], strides: [2, 2], pad: 'valid' },
  { x: [2, 11, 10, 1], filter: [5, 5, 1, 6], strides: [1, 1], pad: 'valid' },
  { x: [2, 12, 12, 6], filter: [5, 5, 6, 4], strides: [1, 1], pad: 'same' },
  { x: [4, 8, 8, 4], filter: [1, 1, 4, 6], strides: [2, 2], pad: 'same' },
  { x: [2, 9, 7, 3], filter: [2, 3, 3, 2], strides: [2, 1], pad: 'same' },
  { x: [2, 10, 9, 2], filter: [3, 2, 2, 3], strides: [1, 3], pad: 'valid' },
  { x: [2, 13, 13, 2], filter: [4, 4, 2, 3], strides: [3, 3], pad: 'same' },
  { x: [2, 7, 8, 2], filter: [3, 3, 2, 3], strides: [2, 2], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { x: [2, 10, 10, 3], filter: [2, 2, 3, 4], strides: [2, 2], pad: 'valid' },
  { x: [2, 11, 9, 2], filter: [5, 5, 2, 3], strides: [2, 2], pad: 'same' },
  // Bottom/right padding so wide that dy has rows reaching past dx (the sub-pixel path crops them).
  { x: [2, 6, 6, 2], filter: [3, 3, 2, 2], strides: [2, 2], pad: [[0, 0], [0, 3], [1, 3], [0, 0]] },
  // Explicit padding wider than the kernel: the dilated dy is cropped instead of padded.
  { x: [2, 6, 5, 2], filter: [2, 2, 2, 3], strides: [1, 2], pad: [[0, 0], [3, 1], [2, 2], [0, 0]] },
];

function convOutShape(c: ConvCase): number[] {
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad, undefined, false, 'channelsLast').outShape;
}

function inputGradientKernel(c: ConvCase, dy: Float32Array, w: Float32Array, kernel?: tf.KernelConfig): Float32Array {
  const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x } as unknown as tf.NamedAttrMap;
  return tf.tidy(() => {
    const dyT = tf.tensor(dy, convOutShape(c));
    const wT = tf.tensor4d(w, c.filter);
    if (kernel === undefined) return take(tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: dyT, filter: wT }, attrs) as tf.Tensor);
    // The shipped kernel, called directly on the wasm backend.
    const backend = tf.backend();
    // Replaced before the backend started, so its wasm function was never bound.
    kernel.setupFunc?.(backend);
    const out = kernel.kernelFunc({ inputs: { dy: dyT, filter: wT }, backend, attrs }) as tf.TensorInfo;
    return take(tf.engine().makeTensorFromTensorInfo(out));
  });
}

beforeAll(async () => {
  expect((await initTensorBackend('wasm')).name).toBe('wasm');
});

describe('wasm Conv2DBackpropInput through a forward conv', () => {
  test('replaces the shipped kernel (tfjs 4.22.0)', () => {
    for (const config of WASM_REPLACEMENT_KERNELS) {
      expect(tf.getKernel(config.kernelName, 'wasm')).toBe(config);
      expect(shippedWasmKernel(config.kernelName)).toBeDefined();
    }
  });

  test.each(CONV_CASES)('matches the cpu kernel: x $x filter $filter stride $strides pad $pad', async (c) => {
    const dy = gaussianValues(sizeOf(convOutShape(c)), 51);
    const w = gaussianValues(sizeOf(c.filter), 52);
    const onWasm = await onBackend('wasm', () => inputGradientKernel(c, dy, w));
    const onCpu = await onBackend('cpu', () => inputGradientKernel(c, dy, w));
    await tf.setBackend('wasm');
    expect(onWasm.length).toBe(sizeOf(c.x));
    expect(relativeMaxError(onWasm, onCpu)).toBeLessThan(1e-5);
    // And the shipped wasm kernel agrees.
    const shipped = inputGradientKernel(c, dy, w, shippedWasmKernel(tf.Conv2DBackpropInput));
    expect(relativeMaxError(onWasm, shipped)).toBeLessThan(1e-5);
  });

  test('conv2d input gradient matches central finite differences', async () => {
    await tf.setBackend('wasm');
    const c = CONV_CASES[4];
    const x = tf.tensor4d(gaussianValues(sizeOf(c.x), 61), c.x);
    const w = tf.tensor4d(gaussianValues(sizeOf(c.filter), 62), c.filter);
    const probe = tf.tensor(gaussianValues(sizeOf(convOutShape(c)), 63), convOutShape(c));
    const f = (xx: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, w, c.strides, c.pad as 'valid'), probe));
    const grad = tf.grad(f)(x);
    const random = new SeededRandom(64);
    for (let k = 0; k < 3; k++) {
      const d = tf.tidy(() => {
        const v = tf.tensor(gaussianValues(x.size, random.deriveSeed()), x.shape);
        return tf.div(v, tf.norm(v));
      });
      const analytic = tf.tidy(() => tf.sum(tf.mul(grad, d)).dataSync()[0]);
      const eps = 1e-2;
      const numeric = tf.tidy(() => (f(tf.add(x, tf.mul(d, eps))).dataSync()[0] - f(tf.sub(x, tf.mul(d, eps))).dataSync()[0]) / (2 * eps));
      d.dispose();
      expect(Math.abs(analytic - numeric)).toBeLessThan(1e-3 + 1e-3 * Math.abs(numeric));
    }
    tf.dispose([x, w, probe, grad]);
  });

  test('frees its intermediates', async () => {
    await tf.setBackend('wasm');
    const c = CONV_CASES[2];
    const dy = gaussianValues(sizeOf(convOutShape(c)), 71);
    const w = gaussianValues(sizeOf(c.filter), 72);
    inputGradientKernel(c, dy, w);
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const before = backend.numDataIds();
    for (const k of [1, 6, 12]) {
      const ck = CONV_CASES[k];
      inputGradientKernel(ck, gaussianValues(sizeOf(convOutShape(ck)), 73), gaussianValues(sizeOf(ck.filter), 74));
    }
    expect(backend.numDataIds()).toBe(before);
  });
});

interface PoolCase {
  x: [number, number, number, number];
  filterSize: [number, number];
  strides: [number, number];
  pad: 'same' | 'valid';
}

const POOL_CASES: PoolCase[] = [
  { x: [2, 8, 8, 3], filterSize: [2, 2], strides: [2, 2], pad: 'valid' },
  { x: [2, 9, 7, 2], filterSize: [2, 2], strides: [2, 2], pad: 'same' },
  { x: [2, 9, 9, 3], filterSize: [3, 3], strides: [2, 2], pad: 'same' },
  { x: [3, 7, 8, 2], filterSize: [3, 2], strides: [1, 2], pad: 'valid' },
  { x: [1, 6, 6, 5], filterSize: [3, 3], strides: [1, 1], pad: 'same' },
];

/** Values from {−1, 0, 1, 2}: most windows hold ties, where only the first maximum gets the gradient. */
function tiedValues(size: number, seed: number): Float32Array {
  const random = new SeededRandom(seed);
  return Float32Array.from({ length: size }, () => random.int(4) - 1);
}

function maxPoolInputGradient(c: PoolCase, x: Float32Array, probe: Float32Array): Float32Array {
  return tf.tidy(() => {
    const f = (xx: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xx as tf.Tensor4D, c.filterSize, c.strides, c.pad), tf.tensor(probe, outShapeOf(c))));
    return take(tf.grad(f)(tf.tensor4d(x, c.x)));
  });
}

function outShapeOf(c: PoolCase): number[] {
  return tf.backend_util.computePool2DInfo(c.x, c.filterSize, c.strides, 1, c.pad).outShape;
}

describe('wasm MaxPoolGrad', () => {
  test.each(POOL_CASES)('matches the cpu kernel with ties: x $x window $filterSize stride $strides $pad', async (c) => {
    for (const values of [tiedValues(sizeOf(c.x), 81), gaussianValues(sizeOf(c.x), 82)]) {
      const probe = gaussianValues(sizeOf(outShapeOf(c)), 83);
      const onWasm = await onBackend('wasm', () => maxPoolInputGradient(c, values, probe));
      const onCpu = await onBackend('cpu', () => maxPoolInputGradient(c, values, probe));
      await tf.setBackend('wasm');
      expect(relativeMaxError(onWasm, onCpu)).toBeLessThan(1e-6);
    }
  });

  test('a window of −∞ passes no gradient, as on cpu', async () => {
    const c = POOL_CASES[0];
    const values = gaussianValues(sizeOf(c.x), 84);
    for (let i = 0; i < 12; i++) values[i] = Number.NEGATIVE_INFINITY;
    const probe = gaussianValues(sizeOf(outShapeOf(c)), 85);
    const onWasm = await onBackend('wasm', () => maxPoolInputGradient(c, values, probe));
    const onCpu = await onBackend('cpu', () => maxPoolInputGradient(c, values, probe));
    await tf.setBackend('wasm');
    expect(Array.from(onWasm)).toEqual(Array.from(onCpu));
  });
});

describe('wasm Sum and Mean over leading axes', () => {
  const REDUCTIONS: { shape: number[]; axis: number | number[] | undefined; keepDims: boolean }[] = [
    { shape: [5, 6, 7, 3], axis: [0, 1, 2], keepDims: false },
    { shape: [5, 6, 7, 3], axis: [2, 0, 1], keepDims: true },
    { shape: [5, 6, 7, 3], axis: 0, keepDims: false },
    { shape: [9, 4], axis: [0], keepDims: true },
    { shape: [5, 6, 7, 3], axis: [1, 2], keepDims: false },
    { shape: [5, 6, 7, 3], axis: undefined, keepDims: false },
    { shape: [5, 6, 7, 3], axis: [-1], keepDims: true },
  ];

  const reduceBoth = (r: (typeof REDUCTIONS)[number], values: Float32Array) =>
    tf.tidy(() => {
      const x = tf.tensor(values, r.shape);
      const sum = tf.sum(x, r.axis, r.keepDims);
      const mean = tf.mean(x, r.axis, r.keepDims);
      return { shapes: [sum.shape, mean.shape], values: [take(sum), take(mean)] };
    });

  test.each(REDUCTIONS)('match the cpu backend: shape $shape axis $axis keepDims $keepDims', async (r) => {
    const values = gaussianValues(sizeOf(r.shape), 91);
    const onWasm = await onBackend('wasm', () => reduceBoth(r, values));
    const onCpu = await onBackend('cpu', () => reduceBoth(r, values));
    await tf.setBackend('wasm');
    expect(onWasm.shapes).toEqual(onCpu.shapes);
    onWasm.values.forEach((v, i) => expect(relativeMaxError(v, onCpu.values[i])).toBeLessThan(1e-6));
  });

  test.each([
    { shape: [40, 16, 16, 8], axis: [0, 1, 2] },
    { shape: [37, 13, 11, 6], axis: [0, 1, 2] },
    { shape: [3000, 7], axis: [0] },
  ])('large inputs (pooled in blocks) match a float64 reference: $shape', async ({ shape, axis }) => {
    await tf.setBackend('wasm');
    const values = gaussianValues(sizeOf(shape), 92);
    const inner = shape[shape.length - 1];
    const outer = values.length / inner;
    const reference = new Float64Array(inner);
    for (let i = 0; i < values.length; i++) reference[i % inner] += values[i];
    const [sum, mean] = tf.tidy(() => {
      const x = tf.tensor(values, shape);
      return [take(tf.sum(x, axis)), take(tf.mean(x, axis))];
    });
    // Float32 rounding of a sum of many terms: judge against the sum of magnitudes' scale.
    expect(relativeMaxError(sum, reference)).toBeLessThan(1e-5);
    expect(relativeMaxError(mean, reference.map((v) => v / outer))).toBeLessThan(1e-6);
  });

  test('int32 input still sums through the shipped kernel', async () => {
    await tf.setBackend('wasm');
    const s = tf.tidy(() => Array.from(tf.sum(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2], 'int32'), 0).dataSync()));
    expect(s).toEqual([9, 12]);
  });
});

describe('wasm Identity and same-dtype Cast share data', () => {
  test('clone and cast give the same values, and the data lives until the last reference is disposed', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const before = backend.numDataIds();
    const x = tf.tensor2d([1.5, -2, 3, 4.25], [2, 2]);
    const clone = x.clone();
    const same = tf.cast(x, 'float32');
    expect(backend.numDataIds()).toBe(before + 1);
    x.dispose();
    expect(Array.from(clone.dataSync())).toEqual([1.5, -2, 3, 4.25]);
    clone.dispose();
    expect(Array.from(same.dataSync())).toEqual([1.5, -2, 3, 4.25]);
    same.dispose();
    expect(backend.numDataIds()).toBe(before);
  });

  test('real casts and variables still behave', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor1d([1.7, -2.2, 0]);
    const asInt = tf.cast(x, 'int32');
    expect(Array.from(asInt.dataSync())).toEqual([1, -2, 0]);
    const v = tf.variable(x.clone());
    v.assign(tf.tidy(() => tf.add(v, 1)));
    expect(Array.from(x.dataSync())).toEqual(Array.from(new Float32Array([1.7, -2.2, 0])));
    expect(Array.from(v.dataSync())).toEqual(Array.from(new Float32Array([2.7, -1.2, 1])));
    tf.dispose([x, asInt, v]);
  });
});

describe('wasm BatchMatMul with transposed operands', () => {
  const PRODUCTS: { a: number[]; b: number[]; transposeA: boolean; transposeB: boolean }[] = [
    { a: [7, 5], b: [3, 5], transposeA: false, transposeB: true },
    { a: [5, 7], b: [5, 3], transposeA: true, transposeB: false },
    { a: [5, 7], b: [3, 5], transposeA: true, transposeB: true },
    { a: [2, 6, 4], b: [2, 3, 6], transposeA: true, transposeB: true },
    { a: [4, 6], b: [6, 3], transposeA: false, transposeB: false },
  ];

  test.each(PRODUCTS)('matches the cpu backend: a $a b $b transposeA $transposeA transposeB $transposeB', async (p) => {
    const av = gaussianValues(sizeOf(p.a), 101);
    const bv = gaussianValues(sizeOf(p.b), 102);
    const product = () => take(tf.tidy(() => tf.matMul(tf.tensor(av, p.a), tf.tensor(bv, p.b), p.transposeA, p.transposeB)));
    const onWasm = await onBackend('wasm', product);
    const onCpu = await onBackend('cpu', product);
    await tf.setBackend('wasm');
    expect(relativeMaxError(onWasm, onCpu)).toBeLessThan(1e-5);
  });

  test('dense-layer gradients (which use transposed products) match central finite differences', async () => {
    await tf.setBackend('wasm');
    const a = tf.tensor2d(gaussianValues(24, 103), [4, 6]);
    const b = tf.tensor2d(gaussianValues(18, 104), [6, 3]);
    const f = (x: tf.Tensor, y: tf.Tensor) => tf.mean(tf.square(tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D)));
    const [ga, gb] = tf.grads(f)([a, b]);
    const eps = 1e-2;
    const numeric = (which: 0 | 1, index: number) =>
      tf.tidy(() => {
        const shift = (t: tf.Tensor, sign: number) => tf.add(t, tf.mul(tf.oneHot(index, t.size).reshape(t.shape), sign * eps));
        const plus = which === 0 ? f(shift(a, 1), b) : f(a, shift(b, 1));
        const minus = which === 0 ? f(shift(a, -1), b) : f(a, shift(b, -1));
        return (plus.dataSync()[0] - minus.dataSync()[0]) / (2 * eps);
      });
    const gaValues = ga.dataSync();
    const gbValues = gb.dataSync();
    for (const i of [0, 7, 23]) expect(Math.abs(gaValues[i] - numeric(0, i))).toBeLessThan(2e-3);
    for (const i of [0, 10, 17]) expect(Math.abs(gbValues[i] - numeric(1, i))).toBeLessThan(2e-3);
    tf.dispose([a, b, ga, gb]);
  });
});
