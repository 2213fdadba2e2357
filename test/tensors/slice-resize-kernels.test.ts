import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { shippedWasmKernel, WASM_REPLACEMENT_KERNELS } from '../../src/core/tensors/wasm-kernels';
import { concatConfig, padV2Config } from '../../src/core/tensors/wasm-kernels/pad-concat';
import { resizeNearestNeighborGradConfig } from '../../src/core/tensors/wasm-kernels/resize-nearest-neighbor-grad';
import { sliceConfig, splitVConfig } from '../../src/core/tensors/wasm-kernels/slice';
import { SeededRandom } from '../../src/core/random';
import { gaussianValues, relativeMaxError, sizeOf } from './support';

type DType = 'float32' | 'int32' | 'bool';

interface Result {
  shape: number[];
  dtype: string;
  values: number[];
}

function result(t: tf.Tensor): Result {
  const r = { shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync() as ArrayLike<number>) };
  t.dispose();
  return r;
}

/** Runs `f` on wasm and on cpu (same inputs, built inside `f`) and returns both results; wasm stays. */
async function onBoth<T>(f: () => T): Promise<{ wasm: T; cpu: T }> {
  await tf.setBackend('cpu');
  const cpu = f();
  await tf.setBackend('wasm');
  const wasm = f();
  return { wasm, cpu };
}

function values(dtype: DType, size: number, seed: number): Float32Array | Int32Array | Uint8Array {
  const random = new SeededRandom(seed);
  if (dtype === 'float32') return gaussianValues(size, seed);
  if (dtype === 'int32') return Int32Array.from({ length: size }, () => random.int(2001) - 1000);
  return Uint8Array.from({ length: size }, () => random.int(2));
}

function makeTensor(dtype: DType, shape: number[], seed: number): tf.Tensor {
  return tf.tensor(values(dtype, sizeOf(shape), seed), shape, dtype);
}

/** Runs `f` and disposes every tensor it made; for results copied out as plain data. */
function scoped<T>(f: () => T): T {
  tf.engine().startScope();
  try {
    return f();
  } finally {
    tf.engine().endScope();
  }
}

function wasmBackend(): { numDataIds(): number } {
  return tf.backend() as unknown as { numDataIds(): number };
}

interface SliceCase {
  shape: number[];
  begin: number[];
  size: number[];
  dtype: DType;
}

/** Random slices: ranks 1–6, odd sizes, zero-size dims, size −1 (to the end), all three dtypes. */
function randomSliceCases(count: number, seed: number): SliceCase[] {
  const random = new SeededRandom(seed);
  const dtypes: DType[] = ['float32', 'int32', 'bool'];
  const cases: SliceCase[] = [];
  for (let i = 0; i < count; i++) {
    const rank = 1 + (i % 6);
    const shape = Array.from({ length: rank }, () => (random.int(12) === 0 ? 0 : 1 + random.int(rank > 4 ? 4 : 7)));
    const begin: number[] = [];
    const size: number[] = [];
    for (const n of shape) {
      const b = n === 0 ? 0 : random.int(n);
      begin.push(b);
      const roll = random.int(5);
      size.push(roll === 0 ? -1 : roll === 1 ? n - b : roll === 4 ? random.int(n - b + 1) : Math.min(n - b, 1 + random.int(n - b)));
    }
    cases.push({ shape, begin, size, dtype: dtypes[i % 3] });
  }
  return cases;
}

/** Each axis sliced alone (others whole), in the middle, at the start and at the end. */
function perAxisCases(): SliceCase[] {
  const cases: SliceCase[] = [];
  for (const shape of [[7], [5, 9], [3, 5, 7], [3, 5, 7, 3], [2, 3, 5, 3, 4], [2, 3, 2, 3, 2, 3]]) {
    for (let axis = 0; axis < shape.length; axis++) {
      for (const [b, s] of [
        [1, shape[axis] - 2],
        [0, shape[axis] - 1],
        [1, -1],
        [shape[axis] - 1, 1],
        [2, 0],
      ]) {
        const begin = shape.map((_, i) => (i === axis ? b : 0));
        const size = shape.map((n, i) => (i === axis ? s : n));
        cases.push({ shape, begin, size, dtype: 'float32' });
      }
    }
  }
  return cases;
}

beforeAll(async () => {
  expect((await initTensorBackend('wasm')).name).toBe('wasm');
});

describe('wasm copy kernels registration', () => {
  test('Slice, SplitV, PadV2, Concat and ResizeNearestNeighborGrad are replaced (tfjs 4.22.0)', () => {
    for (const config of [sliceConfig, splitVConfig, padV2Config, concatConfig, resizeNearestNeighborGradConfig]) {
      expect(WASM_REPLACEMENT_KERNELS).toContain(config);
      expect(tf.getKernel(config.kernelName, 'wasm')).toBe(config);
      expect(shippedWasmKernel(config.kernelName)).toBeDefined();
    }
  });
});

describe('wasm Slice', () => {
  const cases = [...randomSliceCases(120, 7), ...perAxisCases()];

  test.each(cases.map((c, i) => [i, c] as const))('case %i equals cpu exactly: %j', async (_i, c) => {
    const { wasm, cpu } = await onBoth(() => scoped(() => result(tf.slice(makeTensor(c.dtype, c.shape, 3), c.begin, c.size))));
    expect(wasm.shape).toEqual(cpu.shape);
    expect(wasm.dtype).toBe(cpu.dtype);
    expect(wasm.values).toEqual(cpu.values);
  });

  test('the contiguous case and the whole tensor are plain copies with the right values', async () => {
    await tf.setBackend('wasm');
    const x = tf.range(0, 2 * 3 * 4 * 5).reshape([2, 3, 4, 5]);
    expect(result(tf.slice(x, [1, 0, 0, 0], [1, 3, 4, 5])).values).toEqual(Array.from({ length: 60 }, (_, i) => 60 + i));
    expect(result(tf.slice(x, [0, 1, 0, 0], [1, 2, 4, 5])).values).toEqual(Array.from({ length: 40 }, (_, i) => 20 + i));
    expect(result(tf.slice(x, 0, -1)).values).toEqual(Array.from({ length: 120 }, (_, i) => i));
    x.dispose();
  });

  test('the TV-prior slices of a [256, 28, 28, 1] batch equal cpu', async () => {
    const shape = [256, 28, 28, 1];
    const boxes: Array<[number[], number[]]> = [
      [[0, 0, 0, 0], [256, 28, 27, 1]],
      [[0, 0, 1, 0], [256, 28, 27, 1]],
      [[0, 1, 0, 0], [256, 27, 28, 1]],
      [[0, 1, 1, 0], [256, 27, 27, 1]],
    ];
    for (const [begin, size] of boxes) {
      const { wasm, cpu } = await onBoth(() => scoped(() => result(tf.slice(makeTensor('float32', shape, 5), begin, size))));
      expect(wasm.values).toEqual(cpu.values);
    }
  });

  test('frees nothing it should keep and leaks nothing', async () => {
    await tf.setBackend('wasm');
    const x = makeTensor('float32', [3, 5, 7, 2], 9);
    const before = wasmBackend().numDataIds();
    for (let i = 0; i < 5; i++) {
      tf.slice(x, [1, 1, 2, 0], [2, 3, 4, 2]).dispose();
      tf.split(x, [2, 5], 2).forEach((t) => t.dispose());
    }
    expect(wasmBackend().numDataIds()).toBe(before);
    x.dispose();
  });
});

describe('wasm SplitV', () => {
  const cases: Array<{ shape: number[]; splits: number[] | number; axis: number; dtype: DType }> = [
    { shape: [7, 5], splits: [3, 4], axis: 0, dtype: 'float32' },
    { shape: [7, 5], splits: [1, 1, 3], axis: 1, dtype: 'int32' },
    { shape: [3, 9, 5, 2], splits: [2, 0, 7], axis: 1, dtype: 'float32' },
    { shape: [3, 9, 5, 2], splits: [4, -1], axis: 2, dtype: 'float32' },
    { shape: [3, 9, 5, 3], splits: [1, 2], axis: 3, dtype: 'bool' },
    { shape: [3, 9, 5, 2], splits: 3, axis: -3, dtype: 'float32' },
    { shape: [2, 3, 5, 3, 4], splits: [1, 3, 1], axis: 2, dtype: 'float32' },
    { shape: [2, 3, 5, 3, 4], splits: [3, 1], axis: 4, dtype: 'int32' },
    { shape: [5, 0, 3], splits: [2, 3], axis: 0, dtype: 'float32' },
    { shape: [256, 28, 28, 1], splits: [25, 3], axis: 1, dtype: 'float32' },
    { shape: [256, 28, 28, 1], splits: [26, 2], axis: 2, dtype: 'float32' },
  ];

  test.each(cases)('$shape split $splits on axis $axis ($dtype) equals cpu exactly', async (c) => {
    const { wasm, cpu } = await onBoth(() => scoped(() => tf.split(makeTensor(c.dtype, c.shape, 11), c.splits, c.axis).map(result)));
    expect(wasm.length).toBe(cpu.length);
    for (let i = 0; i < cpu.length; i++) {
      expect(wasm[i].shape).toEqual(cpu[i].shape);
      expect(wasm[i].values).toEqual(cpu[i].values);
    }
  });
});

describe('wasm PadV2 and Concat', () => {
  const padCases: Array<{ shape: number[]; paddings: Array<[number, number]>; value: number; dtype: DType }> = [
    { shape: [5], paddings: [[2, 3]], value: 0, dtype: 'float32' },
    { shape: [3, 4], paddings: [[0, 1], [2, 0]], value: 1.5, dtype: 'float32' },
    { shape: [3, 4], paddings: [[1, 1], [1, 1]], value: 7, dtype: 'int32' },
    { shape: [2, 5, 7, 3], paddings: [[0, 0], [1, 0], [0, 1], [0, 0]], value: 0, dtype: 'float32' },
    { shape: [2, 5, 7, 1], paddings: [[0, 0], [0, 1], [1, 0], [0, 0]], value: 0, dtype: 'float32' },
    { shape: [2, 5, 7, 3], paddings: [[1, 2], [0, 0], [0, 0], [2, 1]], value: -2, dtype: 'float32' },
    { shape: [2, 3, 4, 3, 2], paddings: [[0, 1], [1, 0], [0, 0], [2, 2], [0, 1]], value: 0, dtype: 'float32' },
    { shape: [2, 3, 2], paddings: [[0, 0], [1, 1], [0, 0]], value: 1, dtype: 'bool' },
    { shape: [2, 0, 3], paddings: [[1, 0], [1, 1], [0, 0]], value: 3, dtype: 'float32' },
  ];

  test.each(padCases)('pad $shape by $paddings with $value ($dtype) equals cpu exactly', async (c) => {
    const { wasm, cpu } = await onBoth(() => scoped(() => result(tf.pad(makeTensor(c.dtype, c.shape, 13), c.paddings, c.value))));
    expect(wasm.shape).toEqual(cpu.shape);
    expect(wasm.values).toEqual(cpu.values);
  });

  const concatCases: Array<{ shapes: number[][]; axis: number; dtype: DType }> = [
    { shapes: [[3], [5]], axis: 0, dtype: 'float32' },
    { shapes: [[2, 3], [2, 1], [2, 4]], axis: 1, dtype: 'int32' },
    { shapes: [[4, 5, 3, 1], [4, 5, 25, 1]], axis: 2, dtype: 'float32' },
    { shapes: [[4, 3, 7, 2], [4, 25, 7, 2]], axis: 1, dtype: 'float32' },
    { shapes: [[4, 3, 7, 2], [4, 3, 7, 5]], axis: -1, dtype: 'bool' },
    { shapes: [[2, 3, 0, 2], [2, 3, 4, 2], [2, 3, 1, 2]], axis: 2, dtype: 'float32' },
    { shapes: [[2, 3, 2, 2, 3], [2, 3, 2, 2, 3]], axis: 3, dtype: 'float32' },
    { shapes: [[2, 0], [2, 3]], axis: 1, dtype: 'float32' },
  ];

  test.each(concatCases)('concat $shapes on axis $axis ($dtype) equals cpu exactly', async (c) => {
    const { wasm, cpu } = await onBoth(() => scoped(() => result(tf.concat(c.shapes.map((s, i) => makeTensor(c.dtype, s, 17 + i)), c.axis))));
    expect(wasm.shape).toEqual(cpu.shape);
    expect(wasm.values).toEqual(cpu.values);
  });
});

interface ResizeCase {
  images: [number, number, number, number];
  size: [number, number];
  alignCorners: boolean;
  halfPixelCenters: boolean;
}

const RESIZE_CASES: ResizeCase[] = [];
for (const [images, size] of [
  [[3, 5, 5, 2], [10, 10]],
  [[2, 10, 10, 1], [14, 14]],
  [[2, 7, 7, 3], [28, 28]],
  [[2, 5, 7, 2], [10, 14]],
  [[2, 10, 14, 3], [14, 10]],
  [[2, 28, 28, 2], [7, 9]],
  [[1, 1, 1, 2], [3, 4]],
  [[2, 4, 3, 1], [1, 1]],
] as Array<[[number, number, number, number], [number, number]]>) {
  for (const [alignCorners, halfPixelCenters] of [
    [false, false],
    [true, false],
    [false, true],
  ]) {
    RESIZE_CASES.push({ images, size, alignCorners, halfPixelCenters });
  }
}

/**
 * The forward's transpose, built from the cpu *forward* kernel: resizing an image of pixel indices
 * says which input pixel each output pixel reads; dy is then summed into it (float64, dy order).
 */
async function transposeOfForward(c: ResizeCase, dy: Float32Array): Promise<Float32Array> {
  const [batch, h, w, depth] = c.images;
  const [oh, ow] = c.size;
  await tf.setBackend('cpu');
  const index = scoped(() => {
    const ids = tf.tensor4d(Float32Array.from({ length: h * w }, (_, i) => i), [1, h, w, 1]);
    return Array.from(tf.image.resizeNearestNeighbor(ids, c.size, c.alignCorners, c.halfPixelCenters).dataSync());
  });
  await tf.setBackend('wasm');
  const dx = new Float64Array(batch * h * w * depth);
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < oh * ow; o++) {
      for (let d = 0; d < depth; d++) dx[(b * h * w + index[o]) * depth + d] += dy[(b * oh * ow + o) * depth + d];
    }
  }
  return Float32Array.from(dx);
}

function resizeGrad(c: ResizeCase, images: Float32Array, dy: Float32Array, shape = c.images, kernel?: tf.KernelConfig): Float32Array {
  const attrs = { alignCorners: c.alignCorners, halfPixelCenters: c.halfPixelCenters, size: c.size } as unknown as tf.NamedAttrMap;
  return scoped(() => {
    const inputs = { images: tf.tensor4d(images, shape), dy: tf.tensor4d(dy, [shape[0], c.size[0], c.size[1], shape[3]]) };
    if (kernel === undefined) return Float32Array.from((tf.engine().runKernel(tf.ResizeNearestNeighborGrad, inputs, attrs) as tf.Tensor).dataSync() as Float32Array);
    kernel.setupFunc?.(tf.backend());
    const out = kernel.kernelFunc({ inputs, backend: tf.backend(), attrs }) as tf.TensorInfo;
    return Float32Array.from(tf.engine().makeTensorFromTensorInfo(out).dataSync() as Float32Array);
  });
}

/** Whether the mapping with and without halfPixelCenters is the same along every axis (integer factors). */
function halfPixelIrrelevant(c: ResizeCase): boolean {
  return [0, 1].every((i) => c.size[i] % c.images[i + 1] === 0);
}

describe('wasm ResizeNearestNeighborGrad', () => {
  test.each(RESIZE_CASES)('$images → $size alignCorners $alignCorners halfPixelCenters $halfPixelCenters', async (c) => {
    const [batch, h, w, depth] = c.images;
    const images = gaussianValues(sizeOf(c.images), 23);
    const dy = gaussianValues(batch * c.size[0] * c.size[1] * depth, 24);
    await tf.setBackend('wasm');
    const ours = resizeGrad(c, images, dy);
    // The exact transpose of the forward kernel, halfPixelCenters included.
    expect(relativeMaxError(ours, await transposeOfForward(c, dy))).toBeLessThan(1e-6);
    // With alignCorners, a 1-pixel input side and a longer output, tfjs' kernels' search window is
    // infinite (scale 0) and they never return: only the transpose judges that case.
    const tfjsHangs = c.alignCorners && [0, 1].some((i) => c.images[i + 1] === 1 && c.size[i] > 1);
    if ((!c.halfPixelCenters || halfPixelIrrelevant(c)) && !tfjsHangs) {
      // tfjs' cpu kernel, one image at a time (its dy batch offset is wrong for batch > 1): exact.
      await tf.setBackend('cpu');
      const perImage = sizeOf([h, w, depth]);
      const dyPerImage = c.size[0] * c.size[1] * depth;
      for (let b = 0; b < batch; b++) {
        const cpu = resizeGrad(
          c,
          images.subarray(b * perImage, (b + 1) * perImage),
          dy.subarray(b * dyPerImage, (b + 1) * dyPerImage),
          [1, h, w, depth],
        );
        expect(Array.from(ours.subarray(b * perImage, (b + 1) * perImage))).toEqual(Array.from(cpu));
      }
      await tf.setBackend('wasm');
      // tfjs-backend-wasm's own kernel, whole batch.
      const shipped = resizeGrad(c, images, dy, c.images, shippedWasmKernel(tf.ResizeNearestNeighborGrad));
      expect(relativeMaxError(ours, shipped)).toBeLessThan(1e-6);
    }
  });

  test('halfPixelCenters with a non-integer factor (10 → 14) follows the forward, unlike tfjs 4.22 kernels', async () => {
    const c: ResizeCase = { images: [1, 10, 10, 1], size: [14, 14], alignCorners: false, halfPixelCenters: true };
    const images = gaussianValues(100, 31);
    const dy = gaussianValues(196, 32);
    await tf.setBackend('wasm');
    const ours = resizeGrad(c, images, dy);
    const shipped = resizeGrad(c, images, dy, c.images, shippedWasmKernel(tf.ResizeNearestNeighborGrad));
    expect(relativeMaxError(ours, await transposeOfForward(c, dy))).toBeLessThan(1e-6);
    expect(relativeMaxError(shipped, await transposeOfForward(c, dy))).toBeGreaterThan(1e-3);
  });

  test('leaks no tensor data', async () => {
    await tf.setBackend('wasm');
    const c = RESIZE_CASES[0];
    const images = gaussianValues(sizeOf(c.images), 41);
    const dy = gaussianValues(c.images[0] * c.size[0] * c.size[1] * c.images[3], 42);
    resizeGrad(c, images, dy);
    const before = wasmBackend().numDataIds();
    for (let i = 0; i < 3; i++) resizeGrad(c, images, dy);
    expect(wasmBackend().numDataIds()).toBe(before);
  });
});

describe('gradients through slice, split, concat and resize', () => {
  /** A loss like the synthesis iteration's: TV differences, torch.roll, nearest upsampling, a crop. */
  function loss(x: tf.Tensor4D, weights: tf.Tensor4D): tf.Scalar {
    const [n, h, w, c] = x.shape;
    const part = (y0: number, x0: number, hh: number, ww: number) => tf.slice(x, [0, y0, x0, 0], [n, hh, ww, c]);
    const tv = tf.add(tf.sum(tf.square(tf.sub(part(0, 0, h, w - 1), part(0, 1, h, w - 1)))), tf.sum(tf.square(tf.sub(part(0, 0, h - 1, w), part(1, 0, h - 1, w)))));
    const [top, bottom] = tf.split(x, [h - 2, 2], 1);
    const [left, right] = tf.split(tf.concat([bottom, top], 1), [w - 3, 3], 2);
    const rolled = tf.concat([right, left], 2) as tf.Tensor4D;
    const up = tf.image.resizeNearestNeighbor(rolled, [2 * h + 1, 2 * w - 1]);
    const crop = tf.slice(up, [0, 1, 2, 0], [n, h, w, c]);
    return tf.add(tv, tf.sum(tf.mul(crop, weights))) as tf.Scalar;
  }

  test('tf.grad on wasm equals cpu (one image) and central finite differences (a batch)', async () => {
    const shape: [number, number, number, number] = [1, 7, 9, 2];
    const xv = gaussianValues(sizeOf(shape), 51);
    const wv = gaussianValues(sizeOf(shape), 52);
    const gradient = () => scoped(() => Float32Array.from(tf.grad((x: tf.Tensor) => loss(x as tf.Tensor4D, tf.tensor4d(wv, shape)))(tf.tensor4d(xv, shape)).dataSync() as Float32Array));
    const { wasm, cpu } = await onBoth(gradient);
    expect(relativeMaxError(wasm, cpu)).toBeLessThan(1e-6);

    const batchShape: [number, number, number, number] = [3, 6, 7, 2];
    const bx = gaussianValues(sizeOf(batchShape), 53);
    const bw = gaussianValues(sizeOf(batchShape), 54);
    await tf.setBackend('wasm');
    const analytic = scoped(() => tf.grad((x: tf.Tensor) => loss(x as tf.Tensor4D, tf.tensor4d(bw, batchShape)))(tf.tensor4d(bx, batchShape)).dataSync() as Float32Array);
    const lossAt = (values: Float32Array) => scoped(() => loss(tf.tensor4d(values, batchShape), tf.tensor4d(bw, batchShape)).dataSync()[0]);
    const random = new SeededRandom(55);
    const eps = 1e-2;
    for (let k = 0; k < 24; k++) {
      const i = random.int(bx.length);
      const plus = Float32Array.from(bx);
      const minus = Float32Array.from(bx);
      plus[i] += eps;
      minus[i] -= eps;
      const numeric = (lossAt(plus) - lossAt(minus)) / (2 * eps);
      expect(Math.abs(numeric - analytic[i])).toBeLessThan(2e-2 * Math.max(1, Math.abs(analytic[i])));
    }
  });
});
