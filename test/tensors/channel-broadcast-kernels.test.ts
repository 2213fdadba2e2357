import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { initTensorBackend } from '../../src/core/tensors/backend';
import {
  addChannelConfig,
  CHANNEL_PATH_MAX_CHANNELS,
  CHANNEL_PATH_MIN_ELEMENTS,
  channelPathApplies,
  fusedBatchNormChannelConfig,
  multiplyChannelConfig,
  subChannelConfig,
} from '../../src/core/tensors/wasm-kernels/channel-broadcast';
import { gaussianValues, onBackend, relativeMaxError, sizeOf } from './support';

type Op = 'mul' | 'add' | 'sub';

/** [full shape, vector shape]: every case below takes the depthwise path (checked in the first test). */
const CASES: Array<{ full: number[]; vector: number[] }> = [
  { full: [4, 16, 16, 16], vector: [16] },
  { full: [16, 14, 14, 6], vector: [1, 1, 1, 6] },
  { full: [3, 75, 10, 16], vector: [1, 16] },
  { full: [1100, 15], vector: [15] },
  { full: [2, 3, 40, 41, 2], vector: [1, 1, 2] },
];

function run(op: Op, a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return op === 'mul' ? tf.mul(a, b) : op === 'add' ? tf.add(a, b) : tf.sub(a, b);
}

/** Values with NaN, ±∞, ±0 and large magnitudes sprinkled in, so IEEE corner cases are compared too. */
function awkwardValues(size: number, seed: number): Float32Array {
  const v = gaussianValues(size, seed);
  const specials = [NaN, Infinity, -Infinity, 0, -0, 3e38, -3e38, 1e-40];
  for (let i = 0; i < specials.length && i * 97 < size; i++) v[i * 97] = specials[i];
  return v;
}

/** Element-wise identical, NaN equal to NaN and +0 distinct from −0 (Object.is). */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | undefined {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return undefined;
}

beforeAll(async () => {
  expect((await initTensorBackend('wasm')).name).toBe('wasm');
});

describe('wasm Multiply / Add / Sub by a channel vector, and FusedBatchNorm', () => {
  test('replace the shipped kernels (tfjs 4.22.0)', () => {
    expect(tf.getKernel(tf.Multiply, 'wasm')).toBe(multiplyChannelConfig);
    expect(tf.getKernel(tf.Add, 'wasm')).toBe(addChannelConfig);
    expect(tf.getKernel(tf.Sub, 'wasm')).toBe(subChannelConfig);
    expect(tf.getKernel(tf.FusedBatchNorm, 'wasm')).toBe(fusedBatchNormChannelConfig);
  });

  test('the path is taken for channel vectors only, and only where it pays', () => {
    const info = (shape: number[], dtype: tf.DataType = 'float32') => ({ dataId: {}, shape, dtype });
    for (const c of CASES) {
      expect(channelPathApplies(info(c.full), info(c.vector))).toBe(true);
      expect(channelPathApplies(info(c.vector), info(c.full))).toBe(true);
    }
    // Not a channel vector: a scalar, a vector over another axis, a full tensor, int32.
    expect(channelPathApplies(info([4, 16, 16, 16]), info([]))).toBe(false);
    expect(channelPathApplies(info([4, 16, 16, 16]), info([16, 1]))).toBe(false);
    expect(channelPathApplies(info([4, 16, 16, 16]), info([4, 16, 16, 16]))).toBe(false);
    expect(channelPathApplies(info([4, 16, 16, 16], 'int32'), info([16], 'int32'))).toBe(false);
    // Too small, or channels wide enough for the shipped kernel.
    expect(channelPathApplies(info([1, 16, 16, 16]), info([16]))).toBe(false);
    expect(CHANNEL_PATH_MIN_ELEMENTS).toBeGreaterThan(4096);
    expect(channelPathApplies(info([64, 8, 8, 2 * CHANNEL_PATH_MAX_CHANNELS]), info([2 * CHANNEL_PATH_MAX_CHANNELS]))).toBe(false);
  });

  const combos = CASES.flatMap((c) => (['mul', 'add', 'sub'] as Op[]).flatMap((op) => [true, false].map((vectorFirst) => ({ ...c, op, vectorFirst }))));
  test.each(combos)('$op of $full and $vector (vector first: $vectorFirst) is bit-identical to cpu, NaN and ±∞ included', async ({ full, vector, op, vectorFirst }) => {
    const x = awkwardValues(sizeOf(full), 3);
    const v = gaussianValues(sizeOf(vector), 4);
    v[0] = 0; // 0·∞ = NaN, ∞ − ∞ does not arise with a finite v
    const compute = () =>
      tf.tidy(() => {
        const [a, b] = vectorFirst ? [tf.tensor(v, vector), tf.tensor(x, full)] : [tf.tensor(x, full), tf.tensor(v, vector)];
        const out = run(op, a, b);
        expect(out.shape).toEqual(full);
        return Float32Array.from(out.dataSync() as Float32Array);
      });
    const onWasm = await onBackend('wasm', compute);
    const onCpu = await onBackend('cpu', compute);
    await tf.setBackend('wasm');
    expect(firstDifference(onWasm, onCpu)).toBeUndefined();
  });

  test('shapes the path does not take still give cpu’s results (scalars, other axes, int32, small)', async () => {
    const cases: Array<[number[], number[], tf.DataType]> = [
      [[4, 16, 16, 16], [], 'float32'],
      [[4, 16, 16, 16], [16, 1], 'float32'],
      [[4, 16, 16, 16], [16], 'int32'],
      [[2, 3, 3, 4], [4], 'float32'],
      [[64, 8, 8, 64], [64], 'float32'],
    ];
    for (const [full, vector, dtype] of cases) {
      const x = gaussianValues(sizeOf(full), 5).map((value) => (dtype === 'int32' ? Math.round(10 * value) : value));
      const v = gaussianValues(sizeOf(vector), 6).map((value) => (dtype === 'int32' ? Math.round(10 * value) : value));
      for (const op of ['mul', 'add', 'sub'] as Op[]) {
        const compute = () => tf.tidy(() => Array.from(run(op, tf.tensor(x, full, dtype), tf.tensor(v, vector, dtype)).dataSync()));
        const onWasm = await onBackend('wasm', compute);
        const onCpu = await onBackend('cpu', compute);
        await tf.setBackend('wasm');
        expect(firstDifference(onWasm, onCpu)).toBeUndefined();
      }
    }
  });

  test.each([
    { x: [8, 16, 16, 16], stats: [16], scale: true, offset: true, awkward: false },
    { x: [8, 16, 16, 16], stats: [16], scale: true, offset: true, awkward: true },
    { x: [8, 16, 16, 16], stats: [1, 1, 1, 16], scale: true, offset: false, awkward: false },
    { x: [256, 120], stats: [120], scale: false, offset: true, awkward: false },
    { x: [4, 10, 10, 6], stats: [6], scale: false, offset: false, awkward: false },
    { x: [2, 4, 4, 3], stats: [3], scale: true, offset: true, awkward: false }, // below the path's size: shipped kernel
  ])('FusedBatchNorm of $x with statistics $stats (scale $scale, offset $offset, NaN and ±∞ in x: $awkward) matches cpu', async (c) => {
    const channels = c.x[c.x.length - 1];
    // NaN and ±∞ (not ±3e38: the shipped wasm kernel and cpu overflow differently there).
    const x = c.awkward ? awkwardValues(sizeOf(c.x), 7).map((v) => (Math.abs(v) > 1e30 && Number.isFinite(v) ? 0 : v)) : gaussianValues(sizeOf(c.x), 7);
    const mean = gaussianValues(channels, 8);
    const variance = gaussianValues(channels, 9).map((v) => 0.1 + v * v);
    const scale = gaussianValues(channels, 10);
    const offset = gaussianValues(channels, 11);
    const compute = () =>
      tf.tidy(() =>
        Float32Array.from(
          tf
            .batchNorm(
              tf.tensor(x, c.x),
              tf.tensor(mean, c.stats),
              tf.tensor(variance, c.stats),
              c.offset ? tf.tensor(offset, c.stats) : undefined,
              c.scale ? tf.tensor(scale, c.stats) : undefined,
              1e-3,
            )
            .dataSync() as Float32Array,
        ),
      );
    const onWasm = await onBackend('wasm', compute);
    const onCpu = await onBackend('cpu', compute);
    await tf.setBackend('wasm');
    // Non-finite elements must match exactly (XNNPACK's clamp would turn NaN into −∞); the rest within rounding.
    const finite = (v: Float32Array) => v.map((e) => (Number.isFinite(e) ? e : 0));
    expect(firstDifference(onWasm.map((e) => (Number.isFinite(e) ? 0 : e)), onCpu.map((e) => (Number.isFinite(e) ? 0 : e)))).toBeUndefined();
    expect(relativeMaxError(finite(onWasm), finite(onCpu))).toBeLessThan(1e-6);
  });

  test('no tensor data is left behind, and inputs survive', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as unknown as BackendWasm;
    const x = tf.tensor(gaussianValues(4 * 16 * 16 * 16, 12), [4, 16, 16, 16]);
    const v = tf.tensor(gaussianValues(16, 13), [16]);
    const variance = tf.abs(v);
    const before = backend.numDataIds();
    for (let i = 0; i < 3; i++) {
      tf.mul(x, v).dispose();
      tf.add(v, x).dispose();
      tf.sub(x, v).dispose();
      tf.sub(v, x).dispose();
      tf.batchNorm(x, v, variance, v, v).dispose();
    }
    expect(backend.numDataIds()).toBe(before);
    expect(Array.from(v.dataSync()).every(Number.isFinite)).toBe(true);
    expect(x.dataSync()[5]).toBe(gaussianValues(4 * 16 * 16 * 16, 12)[5]);
    tf.dispose([x, v, variance]);
  });

  test('gradients through them match cpu (training-mode BatchNorm layer)', async () => {
    const shape = [8, 16, 16, 16];
    const x = gaussianValues(sizeOf(shape), 14);
    const dy = gaussianValues(sizeOf(shape), 15);
    const compute = () => {
      const layer = tf.layers.batchNormalization({ axis: -1, gammaInitializer: 'randomNormal', betaInitializer: 'randomNormal' });
      layer.build(shape);
      const weights = [tf.tensor(gaussianValues(16, 16), [16]), tf.tensor(gaussianValues(16, 17), [16]), tf.zeros([16]), tf.ones([16])];
      layer.setWeights(weights);
      tf.dispose(weights);
      const result = tf.tidy(() => {
        const xt = tf.tensor(x, shape);
        const g = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(layer.apply(input, { training: true }) as tf.Tensor, tf.tensor(dy, shape))))(xt);
        return Float32Array.from(g.dataSync() as Float32Array);
      });
      layer.weights.forEach((w) => w.dispose());
      return result;
    };
    const onWasm = await onBackend('wasm', compute);
    const onCpu = await onBackend('cpu', compute);
    await tf.setBackend('wasm');
    expect(relativeMaxError(onWasm, onCpu)).toBeLessThan(1e-4);
  });
});
