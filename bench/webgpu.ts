/**
 * The GPU half of issue 4: TF.js `webgpu` (Dawn) against PyTorch CUDA on the same host.
 *
 *   npm run bench:webgpu [-- --steps 10 --warmup 3 --models resnet18,resnet20 --python python3 --no-torch --profile]
 *
 * On a GPU host without Node (../shared/gpu/README.md): `npm run build && ../shared/gpu/pack.sh
 * dist/bench/webgpu.js .gpu`, then there `bash .gpu/run.sh`. A machine with only a software
 * adapter runs it with CONDENSE_WEBGPU_SOFTWARE=1 (kernel checks only make sense there).
 *
 * 1. Kernel checks: Condense's webgpu Conv2DBackpropFilter and Conv2DBackpropInput (its default and
 *    each of its paths forced; through tf.grad of conv2d) against the cpu backend on random shapes
 *    (strides, padding, odd sizes, split and unsplit reductions), the BN-statistics loss and
 *    inference BatchNorm (+ ReLU) kernels (value, gradient, tensors left), whole inversion steps of
 *    LeNet-5-BN and ResNet-18 with random BN weights, and uploads (float32 with NaN/±∞,
 *    int32, bool) read back exactly; tensor and GPU buffer counts flat.
 * 2. The forward conv, filter and input gradients alone at every conv shape of CIFAR ResNet-18
 *    (batch 128): shipped vs ours, each path and matrix-product tile (4×4, 8×4, 8×8 per thread) of
 *    the input gradient, and the implicit-product forward conv (a candidate, not yet the default).
 * 3. Training and input-gradient steps, configurations added one at a time: tfjs' shipped webgpu
 *    kernels and uploads (Condense's backend-independent gradients and input-only path already on),
 *    + uploads through queue.writeBuffer, + the filter-gradient kernel, + the implicit input gradient,
 *    + the columns input gradient for strided and few-channel convs, + Sum/Mean over leading axes
 *    without a transpose, + the BN-statistics loss through its kernels, + inference BatchNorm
 *    (+ ReLU) as one kernel, + a deferred submit batch of 64; then the default with the other tiles
 *    and with the candidate forward conv.
 * 4. PyTorch on CUDA (bench/torch/backend.py --device cuda), the same models and steps.
 * Writes bench/results/webgpu.json.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { initTensorBackend } from '../src/core/tensors/backend';
import {
  restoreShippedWebgpuKernels,
  useCandidateWebgpuKernel,
  useCondenseWebgpuKernels,
  useQueueWriteUploads,
  useShippedUploads,
  webgpuErrorCount,
  webgpuErrors,
} from '../src/core/tensors/webgpu-kernels';
import { replaceKernel } from '../src/core/tensors/kernel-calls';
import { bnStatisticsLoss } from '../src/core/tensors/bn-taps';
import { BN_STATISTICS_KERNELS, bnStatisticsKernelsRegistered } from '../src/core/tensors/bn-statistics-kernels';
import { BATCH_NORM_INFERENCE_KERNELS, batchNormAddRelu, batchNormInference, batchNormInferenceKernelsRegistered } from '../src/core/tensors/batch-norm-inference';
import { inputGradientForward } from '../src/core/tensors/input-gradient';
import { buildModel } from '../src/core/models/zoo';
import { conv2DBackpropInputKernel, inputGradientPath, useGemmInputGradient, type InputGradientChooser } from '../src/core/tensors/webgpu-kernels/conv2d-gemm';
import { forwardConvFits } from '../src/core/tensors/webgpu-kernels/conv2d-input-by-forward';
import { conv2DForwardKernel } from '../src/core/tensors/webgpu-kernels/conv2d-forward';
import { GEMM_TILES } from '../src/core/tensors/webgpu-kernels/implicit-gemm';
import { SeededRandom } from '../src/core/random';
import { repoRoot } from './support/machine';
import { writeBenchResults } from './support/results';
import { BENCH_MODELS, makeWorkload, WORK_LABEL, WORKS, type BenchModel, type Work } from './support/steps';
import { printTable, type Cell } from './support/table';
import { median, pooledTiming, timeSteps, type StepTiming } from './support/timing';

function log(message: string): void {
  process.stderr.write(`[bench:webgpu] ${message}\n`);
}

type Backend = Parameters<typeof useQueueWriteUploads>[0];

// ---------------------------------------------------------------------------------------------
// 1. Kernel checks

interface FilterCase {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: 'same' | 'valid' | number;
}

const FILTER_CASES: FilterCase[] = [
  { x: [2, 7, 9, 3], filter: [3, 3, 3, 5], strides: 1, pad: 'same' },
  { x: [2, 7, 9, 3], filter: [3, 3, 3, 5], strides: 2, pad: 'same' },
  { x: [3, 11, 10, 4], filter: [5, 5, 4, 6], strides: 1, pad: 'valid' },
  { x: [2, 9, 9, 7], filter: [3, 2, 7, 9], strides: [2, 1], pad: 1 },
  { x: [4, 8, 8, 16], filter: [1, 1, 16, 32], strides: 2, pad: 'valid' },
  { x: [16, 16, 16, 32], filter: [3, 3, 32, 64], strides: 1, pad: 'same' },
  { x: [8, 8, 8, 130], filter: [3, 3, 130, 70], strides: 1, pad: 'same' },
  { x: [32, 32, 32, 3], filter: [3, 3, 3, 64], strides: 1, pad: 'same' },
  // dx of 4.7 million elements: the col2im pass needs more than 65,535 workgroups in one dimension.
  { x: [16, 64, 64, 72], filter: [3, 3, 72, 8], strides: 2, pad: 'same' },
];

function gaussian(size: number, seed: number): Float32Array {
  const random = new SeededRandom(seed);
  return Float32Array.from({ length: size }, () => random.gaussian());
}

type ConvPart = 'forward' | 'filter gradient' | 'input gradient';
const CONV_PARTS: ConvPart[] = ['forward', 'filter gradient', 'input gradient'];

/**
 * Ways of Condense's Conv2DBackpropInput: its default choice per conv, and each path forced on every
 * conv (both must be right on every shape, whichever the choice picks).
 */
interface InputGradientVariant {
  label: string;
  choose?: InputGradientChooser;
  /** Outputs per thread of the matrix product ('4x4' when not given), of GEMM_TILES. */
  tile?: string;
}

const INPUT_GRADIENT_VARIANTS: InputGradientVariant[] = [
  { label: 'Condense' },
  ...(['implicit', 'columns'] as const).flatMap((path) =>
    Object.keys(GEMM_TILES).map((tile) => ({ label: `${path} ${tile}`, choose: () => path, tile })),
  ),
  { label: 'forward conv', choose: () => 'forward' },
];

/** Forward conv: tfjs' own, or Condense's implicit product (a candidate) with a tile of GEMM_TILES. */
const FORWARD_VARIANTS = ['shipped', ...Object.keys(GEMM_TILES).map((tile) => `implicit ${tile}`)];

/** Registers Conv2D and FusedConv2D as `variant` of FORWARD_VARIANTS says. */
function useForwardVariant(variant: string): void {
  if (variant === 'shipped') {
    restoreShippedWebgpuKernels([tf.Conv2D, tf.FusedConv2D]);
    return;
  }
  const tile = GEMM_TILES[variant.replace('implicit ', '')];
  for (const name of [tf.Conv2D, tf.FusedConv2D] as const) useCandidateWebgpuKernel(conv2DForwardKernel(name, tile));
}

/** Registers Condense's Conv2DBackpropInput as `variant` says (its default when undefined). */
function useInputGradientVariant(variant?: Omit<InputGradientVariant, 'label'>): void {
  replaceKernel(conv2DBackpropInputKernel(variant?.choose, variant?.tile === undefined ? undefined : GEMM_TILES[variant.tile]));
}

/**
 * One part of a conv2d: the output (Conv2D), dW or dx through tf.grad (Conv2DBackpropFilter,
 * Conv2DBackpropInput), read asynchronously (webgpu has no readSync in Node).
 */
async function convPart(part: ConvPart, c: FilterCase, x: Float32Array, dy: Float32Array, filter: Float32Array): Promise<Float32Array> {
  const g = tf.tidy(() => {
    const xt = tf.tensor4d(x, c.x);
    const ft = tf.tensor4d(filter, c.filter);
    const conv = (input: tf.Tensor, f: tf.Tensor) => tf.conv2d(input as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad);
    const y = conv(xt, ft);
    if (part === 'forward') return y;
    const dyt = tf.tensor(dy.subarray(0, y.size), y.shape);
    if (part === 'filter gradient') return tf.grad((f: tf.Tensor) => tf.sum(tf.mul(conv(xt, f), dyt)))(ft);
    return tf.grad((input: tf.Tensor) => tf.sum(tf.mul(conv(input, ft), dyt)))(xt);
  });
  const values = (await g.data()) as Float32Array;
  g.dispose();
  return values;
}

function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    ref = Math.max(ref, Math.abs(b[i]));
  }
  return diff / Math.max(ref, 1);
}

interface CheckRow {
  check: string;
  error: number;
  tolerance: number;
  ok: boolean;
}

async function kernelChecks(): Promise<CheckRow[]> {
  const rows: CheckRow[] = [];
  for (const [i, c] of FILTER_CASES.entries()) {
    const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
    const x = gaussian(size(c.x), 100 + i);
    // Enough for the conv output (never larger than the input padded by 2 each side); a prefix is used.
    const dy = gaussian(c.x[0] * (c.x[1] + 2) * (c.x[2] + 2) * c.filter[3], 200 + i);
    const filter = gaussian(size(c.filter), 300 + i);
    for (const part of CONV_PARTS) {
      await tf.setBackend('cpu');
      const expected = await convPart(part, c, x, dy, filter);
      await tf.setBackend('webgpu');
      const variants: InputGradientVariant[] =
        part === 'input gradient' ? INPUT_GRADIENT_VARIANTS : part === 'forward' ? FORWARD_VARIANTS.map((label) => ({ label })) : [{ label: '' }];
      for (const variant of variants) {
        if (part === 'input gradient') useInputGradientVariant(variant);
        if (part === 'forward') useForwardVariant(variant.label);
        // A forced path that does not apply to this conv (the forward path on a strided one) is not checked.
        const got = await convPart(part, c, x, dy, filter).catch((err: unknown) => {
          if (err instanceof Error && err.message.includes('path does not')) return undefined;
          throw err;
        });
        if (got === undefined) continue;
        const error = got.length === expected.length ? relativeError(got, expected) : Number.POSITIVE_INFINITY;
        const label = variant.label === '' ? '' : ` (${variant.label})`;
        rows.push({ check: `conv2d ${part}${label}: x ${c.x.join('×')} filter ${c.filter.join('×')} stride ${c.strides} pad ${c.pad}`, error, tolerance: 1e-4, ok: error < 1e-4 });
      }
      useInputGradientVariant(undefined);
      useForwardVariant('shipped');
    }
    // FusedConv2D with a bias and relu, each forward variant.
    const bias = gaussian(c.filter[3], 350 + i);
    const fused = async () => {
      const out = tf.tidy(() =>
        tf.fused.conv2d({ x: tf.tensor4d(x, c.x), filter: tf.tensor4d(filter, c.filter), strides: c.strides, pad: c.pad, bias: tf.tensor1d(bias), activation: 'relu' }),
      );
      const values = (await out.data()) as Float32Array;
      out.dispose();
      return values;
    };
    await tf.setBackend('cpu');
    const expectedFused = await fused();
    await tf.setBackend('webgpu');
    for (const variant of FORWARD_VARIANTS) {
      useForwardVariant(variant);
      const got = await fused();
      const error = got.length === expectedFused.length ? relativeError(got, expectedFused) : Number.POSITIVE_INFINITY;
      rows.push({ check: `fused conv2d + bias + relu (${variant}): x ${c.x.join('×')} filter ${c.filter.join('×')} stride ${c.strides} pad ${c.pad}`, error, tolerance: 1e-4, ok: error < 1e-4 });
    }
    useForwardVariant('shipped');
  }
  // Central differences on webgpu itself: f(x, w) = Σ conv2d(x, w)·dy along a random direction of x and of w.
  for (const [i, c] of [FILTER_CASES[1], FILTER_CASES[5]].entries()) {
    const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
    const x = tf.tensor4d(gaussian(size(c.x), 400 + i), c.x);
    const w = tf.tensor4d(gaussian(size(c.filter), 500 + i), c.filter);
    const y = tf.conv2d(x, w, c.strides, c.pad);
    const dy = tf.tensor(gaussian(y.size, 600 + i), y.shape);
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad), dy));
    const [gx, gw] = tf.grads(f)([x, w]);
    for (const [which, t, g] of [['input', x, gx], ['filter', w, gw]] as Array<[string, tf.Tensor, tf.Tensor]>) {
      const d = tf.tidy(() => {
        const v = tf.tensor(gaussian(t.size, 700 + i), t.shape);
        return tf.div(v, tf.norm(v));
      });
      // f is linear in each argument, so central differences are exact for any step; a unit step keeps
      // float32 cancellation in f(+) − f(−) small (sums of ~10^5 products).
      const eps = 1;
      const [plus, minus, analytic] = await Promise.all(
        [
          tf.tidy(() => (which === 'input' ? f(tf.add(x, tf.mul(d, eps)), w) : f(x, tf.add(w, tf.mul(d, eps))))),
          tf.tidy(() => (which === 'input' ? f(tf.sub(x, tf.mul(d, eps)), w) : f(x, tf.sub(w, tf.mul(d, eps))))),
          tf.tidy(() => tf.sum(tf.mul(g, d))),
        ].map(async (s) => {
          const v = (await s.data())[0];
          s.dispose();
          return v;
        }),
      );
      const numeric = (plus - minus) / (2 * eps);
      const error = Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), 1);
      rows.push({ check: `conv2d ${which} gradient vs central differences: x ${c.x.join('×')} filter ${c.filter.join('×')} stride ${c.strides}`, error, tolerance: 1e-2, ok: error < 1e-2 });
      d.dispose();
    }
    tf.dispose([x, w, y, dy, gx, gw]);
  }
  // Sum and Mean over leading axes (Condense's two-pass column reduction) and over others (shipped).
  const reductions: Array<{ shape: number[]; axes: number[]; keepDims?: boolean }> = [
    { shape: [128, 32, 32, 64], axes: [0, 1, 2] },
    { shape: [16, 8, 8, 130], axes: [0, 1, 2], keepDims: true },
    { shape: [2, 3, 5], axes: [0] },
    { shape: [70000, 1], axes: [0] },
    // 70,000 columns: the second pass's workgroups fold into a second dispatch dimension.
    { shape: [3, 70000], axes: [0] },
    { shape: [4, 6, 10], axes: [1, 2] },
  ];
  for (const [i, r] of reductions.entries()) {
    // Offset by 3 so that means are far from 0 (the error is relative to max(|expected|, 1)).
    const values = gaussian(r.shape.reduce((a, b) => a * b, 1), 800 + i).map((v) => v + 3);
    for (const op of ['sum', 'mean'] as const) {
      const run = async () => {
        const out = tf.tidy(() => tf[op](tf.tensor(values, r.shape), r.axes, r.keepDims));
        const got = { values: (await out.data()) as Float32Array, shape: out.shape };
        out.dispose();
        return got;
      };
      await tf.setBackend('cpu');
      const expected = await run();
      await tf.setBackend('webgpu');
      const got = await run();
      const sameShape = got.shape.join() === expected.shape.join();
      const error = sameShape && got.values.length === expected.values.length ? relativeError(got.values, expected.values) : Number.POSITIVE_INFINITY;
      rows.push({ check: `${op} of ${r.shape.join('×')} over axes ${r.axes.join(',')}${r.keepDims ? ' (keepDims)' : ''}`, error, tolerance: 1e-5, ok: error < 1e-5 });
    }
  }
  rows.push(...(await bnStatisticsChecks()));
  rows.push(...(await batchNormInferenceChecks()));
  rows.push(...(await inversionStepChecks()));
  // AddN of more terms than the device binds storage buffers (the BN-statistics loss of ResNet-18 sums 20).
  const terms = Array.from({ length: 23 }, (_, i) => tf.fill([300], i + 0.5));
  const sum = tf.addN(terms);
  const sumValues = await sum.data();
  const expectedSum = terms.reduce((a, _, i) => a + i + 0.5, 0);
  const sumError = Math.max(...Array.from(sumValues, (v) => Math.abs(v - expectedSum))) / expectedSum;
  tf.dispose([...terms, sum]);
  rows.push({ check: 'AddN of 23 tensors', error: sumError, tolerance: 1e-6, ok: sumError < 1e-6 });
  const specials = Float32Array.from([1.5, -0, NaN, Infinity, -Infinity, 3e38, 1e-40, -7]);
  const cases: Array<[string, tf.TypedArray, tf.DataType]> = [
    ['upload float32 (NaN, ±∞, −0, subnormal)', specials, 'float32'],
    // webgpu's programs read int32 through f32, so the values stay within ±2^24 (exact in f32).
    ['upload int32', Int32Array.from([0, -1, 16777216, -16777215, 12345]), 'int32'],
    ['upload bool', Uint8Array.from([1, 0, 0, 1, 1]), 'bool'],
  ];
  for (const [label, base, dtype] of cases) {
    // 1,024 elements: above WEBGPU_CPU_FORWARD's size limit, so the op runs on the GPU.
    const values = base.constructor === Float32Array ? new Float32Array(1024) : base.constructor === Int32Array ? new Int32Array(1024) : new Uint8Array(1024);
    for (let j = 0; j < values.length; j++) values[j] = base[j % base.length];
    const t = tf.tensor(values, [values.length], dtype);
    // A GPU program reading t forces the upload; reversing twice moves values without arithmetic.
    const out = tf.reverse(tf.reverse(t));
    const back = await out.data();
    tf.dispose([t, out]);
    const same = back.length === values.length && Array.from(values).every((v, j) => Object.is(Number(back[j]), v) || (dtype === 'float32' && Object.is(v, -0) && back[j] === 0));
    rows.push({ check: label, error: same ? 0 : 1, tolerance: 0, ok: same });
  }
  return rows;
}

/**
 * DeepInversion's feature-statistics loss through the webgpu kernels (bn-statistics-kernels.ts)
 * against the loss composed from tfjs ops on cpu: value and gradient of 0.7·loss(taps, weights),
 * several taps at once, odd channel counts and more channels than the norm kernel's 256 threads.
 */
async function bnStatisticsChecks(): Promise<CheckRow[]> {
  const rows: CheckRow[] = [];
  // offset: the values' mean; 300 makes Σx² − n·mean² lose every digit of the variance in float32.
  const cases: Array<{ shapes: number[][]; weights: number[]; offset: number }> = [
    { shapes: [[128, 32, 32, 64]], weights: [1], offset: 1.5 },
    { shapes: [[5, 7, 3, 13], [300, 10], [2, 3, 4, 600]], weights: [10, 1, 0.5], offset: 1.5 },
    { shapes: [[64, 16, 16, 32]], weights: [1], offset: 300 },
  ];
  for (const [i, c] of cases.entries()) {
    const data = c.shapes.map((shape, j) => ({
      shape,
      // Spread 2, far from the running statistics below.
      x: gaussian(shape.reduce((a, b) => a * b, 1), 900 + 10 * i + j).map((v) => c.offset + 2 * v),
      mean: gaussian(shape[shape.length - 1], 950 + 10 * i + j),
      variance: gaussian(shape[shape.length - 1], 970 + 10 * i + j).map((v) => 1 + Math.abs(v)),
    }));
    const run = async () => {
      const before = tf.memory().numTensors;
      const xs = data.map((d) => tf.tensor(d.x, d.shape));
      const stats = data.map((d) => ({ movingMean: tf.tensor1d(d.mean), movingVariance: tf.tensor1d(d.variance) }));
      const f = (...inputs: tf.Tensor[]) =>
        tf.mul(bnStatisticsLoss(inputs.map((input, j) => ({ layerName: `bn${j}`, input, ...stats[j] })), c.weights), 0.7) as tf.Scalar;
      const { value, grads } = tf.valueAndGrads(f)(xs);
      const out = { value: (await value.data())[0], grads: await Promise.all(grads.map(async (g) => (await g.data()) as Float32Array)) };
      tf.dispose([value, ...grads, ...xs, ...stats.flatMap((s) => [s.movingMean, s.movingVariance])]);
      return { ...out, leaked: tf.memory().numTensors - before };
    };
    await tf.setBackend('cpu');
    const expected = await run();
    await tf.setBackend('webgpu');
    const byKernels = bnStatisticsKernelsRegistered('webgpu');
    const got = await run();
    const label = `BN-statistics loss ${byKernels ? 'through its webgpu kernels' : 'composed (its webgpu kernels are NOT registered)'}: x ${c.shapes.map((s) => s.join('×')).join(', ')} (mean ${c.offset}), weights ${c.weights.join(',')}`;
    const valueError = Math.abs(got.value - expected.value) / Math.max(Math.abs(expected.value), 1);
    rows.push({ check: `${label}, value`, error: valueError, tolerance: 1e-5, ok: byKernels && valueError < 1e-5 });
    // Relative to the largest expected value itself (these gradients are of order 1/n, far below 1).
    const gradError = Math.max(...got.grads.map((g, j) => scaledError(g, expected.grads[j])));
    rows.push({ check: `${label}, gradient`, error: gradError, tolerance: 1e-4, ok: byKernels && gradError < 1e-4 });
    rows.push({ check: `${label}, tensors left after the step`, error: got.leaked, tolerance: 0, ok: got.leaked === 0 });
  }
  return rows;
}

/**
 * Inference BatchNorm (+ ReLU, or + residual + ReLU) through its webgpu kernels against tf.batchNorm
 * (tf.add, tf.relu) on cpu: value and gradients of Σ act(BN(x) [+ s])·r for random r and s; x has
 * negative and positive values after the affine map, so the ReLU mask matters.
 */
async function batchNormInferenceChecks(): Promise<CheckRow[]> {
  const rows: CheckRow[] = [];
  const shapes = [[128, 32, 32, 64], [3, 5, 7, 13], [50, 10]];
  for (const [i, shape] of shapes.entries()) {
    const channels = shape[shape.length - 1];
    const size = shape.reduce((a, b) => a * b, 1);
    const x = gaussian(size, 1100 + i);
    const r = gaussian(size, 1120 + i);
    const stats = [gaussian(channels, 1140 + i), gaussian(channels, 1160 + i).map((v) => 0.5 + Math.abs(v)), gaussian(channels, 1180 + i), gaussian(channels, 1190 + i)];
    const s = gaussian(size, 1130 + i);
    for (const variant of ['relu', 'plain', 'residual'] as const) {
      const relu = variant !== 'plain';
      const run = async (byKernels: boolean) => {
        const before = tf.memory().numTensors;
        const [movingMean, movingVariance, beta, gamma] = stats.map((v) => tf.tensor1d(v));
        const weights = tf.tensor(r, shape);
        const constants = { movingMean, movingVariance, beta, gamma, epsilon: 1e-3 };
        const composed = (input: tf.Tensor, residual: tf.Tensor) => {
          const y = tf.batchNorm(input, movingMean, movingVariance, beta, gamma, 1e-3);
          return variant === 'residual' ? tf.relu(tf.add(y, residual)) : relu ? tf.relu(y) : y;
        };
        const fused = (input: tf.Tensor, residual: tf.Tensor) =>
          variant === 'residual' ? batchNormAddRelu(input, residual, constants) : batchNormInference(input, constants, relu);
        const input = tf.tensor(x, shape);
        const residual = tf.tensor(s, shape);
        const f = (...args: tf.Tensor[]) => tf.sum(tf.mul((byKernels ? fused : composed)(args[0], args[1] ?? residual), weights));
        // The residual is differentiated only where the function reads it.
        const { value, grads } = tf.valueAndGrads(f)(variant === 'residual' ? [input, residual] : [input]);
        const residualGrad = grads.length > 1 ? ((await grads[1].data()) as Float32Array) : new Float32Array(0);
        const out = { value: (await value.data())[0], grad: (await grads[0].data()) as Float32Array, residualGrad };
        tf.dispose([value, ...grads, input, residual, movingMean, movingVariance, beta, gamma, weights]);
        return { ...out, leaked: tf.memory().numTensors - before };
      };
      await tf.setBackend('cpu');
      const expected = await run(false);
      await tf.setBackend('webgpu');
      const byKernels = batchNormInferenceKernelsRegistered('webgpu');
      const got = byKernels ? await run(true) : { value: Number.NaN, grad: new Float32Array(0), residualGrad: new Float32Array(0), leaked: 0 };
      const what = { relu: 'inference BatchNorm + ReLU', plain: 'inference BatchNorm', residual: 'inference BatchNorm + residual + ReLU' }[variant];
      const label = `${what} through its webgpu kernels${byKernels ? '' : ' (NOT registered)'}: x ${shape.join('×')}`;
      const valueError = Math.abs(got.value - expected.value) / Math.max(Math.abs(expected.value), 1);
      rows.push({ check: `${label}, value`, error: valueError, tolerance: 1e-4, ok: valueError < 1e-4 });
      const gradError = scaledError(got.grad, expected.grad);
      rows.push({ check: `${label}, input gradient`, error: gradError, tolerance: 1e-5, ok: gradError < 1e-5 });
      if (variant === 'residual') {
        const residualError = scaledError(got.residualGrad, expected.residualGrad);
        rows.push({ check: `${label}, residual gradient`, error: residualError, tolerance: 1e-5, ok: residualError < 1e-5 });
      }
      rows.push({ check: `${label}, tensors left`, error: got.leaked, tolerance: 0, ok: got.leaked === 0 });
    }
  }
  return rows;
}

/** A zoo model with random BatchNorm weights and running statistics (a fresh model's are 1, 0, 0, 1). */
function modelWithRandomBatchNorms(bm: BenchModel, seed: number): tf.LayersModel {
  const model = buildModel(bm.spec, seed);
  for (const [i, layer] of model.layers.filter((l) => l.getClassName() === 'BatchNormalization').entries()) {
    const channels = layer.getWeights()[0].shape[0];
    const [gamma, beta, mean, variance] = [0, 1, 2, 3].map((k) => gaussian(channels, seed * 1000 + 10 * i + k));
    tf.tidy(() =>
      layer.setWeights([
        tf.tensor1d(gamma.map((v) => 1 + 0.3 * v)),
        tf.tensor1d(beta.map((v) => 0.2 * v)),
        tf.tensor1d(mean.map((v) => 0.2 * v)),
        tf.tensor1d(variance.map((v) => 0.5 + Math.abs(v))),
      ]),
    );
  }
  return model;
}

/**
 * One inversion step's loss (cross-entropy + BN statistics) and image gradient, on webgpu with every
 * Condense kernel against cpu, through the input-only path of zoo models with random BN weights.
 */
async function inversionStepChecks(): Promise<CheckRow[]> {
  const rows: CheckRow[] = [];
  const cases: Array<{ id: BenchModel['id']; batch: number }> = [
    { id: 'lenet5-bn', batch: 16 },
    { id: 'resnet18', batch: 4 },
  ];
  for (const c of cases) {
    const bm = BENCH_MODELS.find((m) => m.id === c.id)!;
    const shape = [c.batch, ...bm.spec.inputShape];
    const images = gaussian(shape.reduce((a, b) => a * b, 1), 1300);
    const labels = Array.from({ length: c.batch }, (_, k) => k % bm.spec.numClasses);
    const run = async () => {
      const model = modelWithRandomBatchNorms(bm, 7);
      const forward = inputGradientForward(model);
      const y = tf.oneHot(labels, bm.spec.numClasses);
      const lossOf = (im: tf.Tensor) => {
        const { logits, taps } = forward(im, { training: false });
        return tf.add(tf.losses.softmaxCrossEntropy(y, logits), bnStatisticsLoss(taps)) as tf.Scalar;
      };
      const input = tf.tensor(images, shape);
      const { value, grad } = tf.valueAndGrad(lossOf)(input);
      const out = { value: (await value.data())[0], grad: (await grad.data()) as Float32Array };
      tf.dispose([value, grad, input, y]);
      model.dispose();
      return out;
    };
    await tf.setBackend('cpu');
    const expected = await run();
    await tf.setBackend('webgpu');
    restoreShippedWebgpuKernels(SWITCHED_KERNELS);
    const shipped = await run();
    useCondenseWebgpuKernels(CONDENSE_DEFAULT_KERNELS);
    const got = await run();
    const label = `inversion step (${bm.spec.architecture}${bm.spec.depth ?? ''}, batch ${c.batch}, random BN weights), all Condense kernels`;
    const valueError = Math.abs(got.value - expected.value) / Math.max(Math.abs(expected.value), 1);
    rows.push({ check: `${label}: loss`, error: valueError, tolerance: 1e-4, ok: valueError < 1e-4 });
    // A ReLU whose input is within float32 rounding of 0 may switch on one backend and not the other,
    // which changes the gradient over that unit's receptive field (seen: 2.9e-3 max error, 5e-4 in
    // L2, from forward values that differ by < 1e-6 — with tfjs' own kernels too, at other seeds). The
    // kernels are checked tightly above; here the relative L2 error catches wrong wiring, which is O(1).
    const shippedError = relativeL2(shipped.grad, expected.grad);
    const gradError = relativeL2(got.grad, expected.grad);
    rows.push({ check: `${label}: image gradient, relative L2 (tfjs' own webgpu kernels: ${shippedError.toExponential(2)})`, error: gradError, tolerance: 1e-2, ok: gradError < 1e-2 });
  }
  return rows;
}

/** ‖a − b‖₂ / ‖b‖₂. */
function relativeL2(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let diff = 0;
  let ref = 0;
  for (let k = 0; k < b.length; k++) {
    diff += (a[k] - b[k]) ** 2;
    ref += b[k] ** 2;
  }
  return Math.sqrt(diff / ref);
}

/** max |a − b| over max |b|: relative to the largest expected value itself, however small. */
function scaledError(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  return a.reduce((m, v, k) => Math.max(m, Math.abs(v - b[k])), 0) / b.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

// ---------------------------------------------------------------------------------------------
// 2. The conv gradient kernels alone

/** Distinct (x, filter, stride) of CIFAR ResNet-18's convs at batch 128. */
const RESNET18_CONV_SHAPES: Array<{ label: string; x: [number, number, number, number]; filter: [number, number, number, number]; stride: number }> = [
  { label: 'stem 3→64 32²', x: [128, 32, 32, 3], filter: [3, 3, 3, 64], stride: 1 },
  { label: '64→64 32²', x: [128, 32, 32, 64], filter: [3, 3, 64, 64], stride: 1 },
  { label: '64→128 /2', x: [128, 32, 32, 64], filter: [3, 3, 64, 128], stride: 2 },
  { label: '128→128 16²', x: [128, 16, 16, 128], filter: [3, 3, 128, 128], stride: 1 },
  { label: '256→256 8²', x: [128, 8, 8, 256], filter: [3, 3, 256, 256], stride: 1 },
  { label: '512→512 4²', x: [128, 4, 4, 512], filter: [3, 3, 512, 512], stride: 1 },
  { label: 'shortcut 1×1 64→128 /2', x: [128, 32, 32, 64], filter: [1, 1, 64, 128], stride: 2 },
];

interface KernelTiming {
  kernel: string;
  shape: string;
  gflop: number;
  /**
   * ms per call by variant: 'shipped', 'shipped (matmul program)' where tfjs has a flag for one,
   * 'Condense' (its default), and for the input gradient each of its paths forced.
   */
  ms: Record<string, number>;
}

/** The timing columns of the conv-kernel table, in order. */
const KERNEL_VARIANT_COLUMNS = ['shipped', 'shipped (matmul program)', ...INPUT_GRADIENT_VARIANTS.slice(1).map((v) => v.label), 'Condense'];
// The forward variants' labels are among them (FORWARD_VARIANTS: shipped, implicit 4x4, ...).

/** Kernels Condense replaces on webgpu for speed (AddN's replacement is a fix, always on). */
const TIMED_KERNELS = [tf.Conv2DBackpropInput, tf.Conv2DBackpropFilter] as const;
/** Kernels with a candidate replacement, timed beside the shipped one. */
const CANDIDATE_TIMED_KERNELS = [tf.Conv2D] as const;

/**
 * GPU ms per call of `kernel` from the device's timestamps (tf.profile's kernelTimeMs, which covers
 * every program the kernel runs), median over `repeats` calls after one warm-up; wall-clock ms per call
 * of queued calls when the device has no timestamp queries (then fresh output buffers are in it too).
 */
async function timeKernelCalls(kernel: string, run: () => tf.Tensor, repeats: number): Promise<number> {
  const first = run();
  await first.data();
  first.dispose();
  const profile = await tf.profile(async () => {
    for (let i = 0; i < repeats; i++) {
      const out = run();
      await out.data();
      out.dispose();
    }
  });
  const gpuMs = profile.kernels.filter((k) => k.name === kernel).map((k) => k.kernelTimeMs);
  if (gpuMs.length > 0 && gpuMs.every((ms): ms is number => typeof ms === 'number' && ms > 0)) return median(gpuMs);
  const results: tf.Tensor[] = [];
  const start = process.hrtime.bigint();
  for (let i = 0; i < repeats; i++) results.push(run());
  await results[results.length - 1].data();
  const ms = Number(process.hrtime.bigint() - start) / 1e6 / repeats;
  tf.dispose(results);
  return ms;
}

async function timeConvKernels(repeats: number): Promise<KernelTiming[]> {
  const rows: KernelTiming[] = [];
  for (const s of RESNET18_CONV_SHAPES) {
    const out = Math.ceil(s.x[1] / s.stride);
    const x = tf.randomNormal(s.x, 0, 1, 'float32', 1);
    const dy = tf.randomNormal([s.x[0], out, out, s.filter[3]], 0, 1, 'float32', 2);
    const w = tf.randomNormal(s.filter, 0, 1, 'float32', 3);
    const m = s.x[0] * out * out;
    const gflop = (2 * m * s.filter[0] * s.filter[1] * s.filter[2] * s.filter[3]) / 1e9;
    const common = { strides: s.stride, pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined };
    const calls: Record<(typeof TIMED_KERNELS)[number] | (typeof CANDIDATE_TIMED_KERNELS)[number], () => tf.Tensor> = {
      [tf.Conv2D]: () => tf.engine().runKernel(tf.Conv2D, { x, filter: w }, { ...common, dilations: 1 } as never) as tf.Tensor,
      [tf.Conv2DBackpropInput]: () => tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter: w }, { ...common, inputShape: s.x } as never) as tf.Tensor,
      [tf.Conv2DBackpropFilter]: () => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { ...common, filterShape: s.filter } as never) as tf.Tensor,
    };
    for (const kernel of TIMED_KERNELS) {
      const ms: Record<string, number> = {};
      restoreShippedWebgpuKernels([kernel]);
      ms.shipped = await timeKernelCalls(kernel, calls[kernel], repeats);
      if (kernel === tf.Conv2DBackpropInput) {
        tf.env().set('WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE', false);
        ms['shipped (matmul program)'] = await timeKernelCalls(kernel, calls[kernel], repeats);
        tf.env().set('WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE', true);
      }
      useCondenseWebgpuKernels([kernel]);
      if (kernel === tf.Conv2DBackpropInput) {
        for (const variant of INPUT_GRADIENT_VARIANTS) {
          useInputGradientVariant(variant);
          // A forced path that does not fit the device (a columns matrix over its binding limit) throws: no timing.
          const timing = await timeKernelCalls(kernel, calls[kernel], repeats).catch(() => undefined);
          if (timing !== undefined) ms[variant.label] = timing;
        }
        useInputGradientVariant(undefined);
      } else {
        ms.Condense = await timeKernelCalls(kernel, calls[kernel], repeats);
      }
      rows.push({ kernel, shape: s.label, gflop, ms });
    }
    for (const kernel of CANDIDATE_TIMED_KERNELS) {
      const ms: Record<string, number> = {};
      for (const variant of FORWARD_VARIANTS) {
        useForwardVariant(variant);
        ms[variant] = await timeKernelCalls(kernel, calls[kernel], repeats);
      }
      useForwardVariant('shipped');
      rows.push({ kernel, shape: s.label, gflop, ms });
    }
    tf.dispose([x, dy, w]);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// 3. Steps

interface Configuration {
  label: string;
  uploads: 'shipped' | 'queue.writeBuffer';
  /** Conv kernels of Condense's in use (the others: tfjs' own). */
  kernels: readonly string[];
  /** How Condense's Conv2DBackpropInput picks its path per conv, where not its default. */
  inputGradient?: InputGradientChooser;
  /** Its matrix product's outputs per thread, of GEMM_TILES, where not its default. */
  gemmTile?: string;
  /** Forward conv (Conv2D, FusedConv2D), of FORWARD_VARIANTS; 'shipped' when not given. */
  forward?: string;
  submitBatch: number;
}

/** Condense's default choice per conv, except stride-1 input gradients as forward convs. */
const stride1AsForwardConv: InputGradientChooser = (info, limits) => (forwardConvFits(info) ? 'forward' : inputGradientPath(info, limits));

const ALL_CONV_KERNELS = [...TIMED_KERNELS];
/** Every kernel a configuration switches between tfjs' (or composed ops) and Condense's. */
const SWITCHED_KERNELS = [...ALL_CONV_KERNELS, tf.Sum, tf.Mean, ...BN_STATISTICS_KERNELS, ...BATCH_NORM_INFERENCE_KERNELS];
const CONDENSE_DEFAULT_KERNELS = SWITCHED_KERNELS;
const CONFIGURATIONS: Configuration[] = [
  { label: "tfjs' webgpu conv kernels and uploads", uploads: 'shipped', kernels: [], submitBatch: 15 },
  { label: '+ uploads through queue.writeBuffer', uploads: 'queue.writeBuffer', kernels: [], submitBatch: 15 },
  { label: '+ Condense Conv2DBackpropFilter', uploads: 'queue.writeBuffer', kernels: [tf.Conv2DBackpropFilter], submitBatch: 15 },
  {
    label: '+ Condense Conv2DBackpropInput, implicit product (stride 1, ≥ 16 channels) only',
    uploads: 'queue.writeBuffer',
    kernels: ALL_CONV_KERNELS,
    inputGradient: (info) => (useGemmInputGradient(info) ? 'implicit' : 'shipped'),
    submitBatch: 15,
  },
  { label: '+ columns and col2im for the other convs', uploads: 'queue.writeBuffer', kernels: ALL_CONV_KERNELS, submitBatch: 15 },
  { label: '+ Condense Sum and Mean over leading axes', uploads: 'queue.writeBuffer', kernels: [...ALL_CONV_KERNELS, tf.Sum, tf.Mean], submitBatch: 15 },
  { label: '+ BN-statistics loss kernels', uploads: 'queue.writeBuffer', kernels: [...ALL_CONV_KERNELS, tf.Sum, tf.Mean, ...BN_STATISTICS_KERNELS], submitBatch: 15 },
  { label: '+ inference BatchNorm (+ ReLU) kernels (Condense default)', uploads: 'queue.writeBuffer', kernels: CONDENSE_DEFAULT_KERNELS, submitBatch: 15 },
  { label: '+ deferred submit batch 64', uploads: 'queue.writeBuffer', kernels: CONDENSE_DEFAULT_KERNELS, submitBatch: 64 },
  { label: 'Condense default, input-gradient product 8×4 per thread', uploads: 'queue.writeBuffer', kernels: CONDENSE_DEFAULT_KERNELS, gemmTile: '8x4', submitBatch: 15 },
  { label: 'Condense default, input-gradient product 8×8 per thread', uploads: 'queue.writeBuffer', kernels: CONDENSE_DEFAULT_KERNELS, gemmTile: '8x8', submitBatch: 15 },
  { label: 'Condense default + forward conv as implicit product 4×4', uploads: 'queue.writeBuffer', kernels: CONDENSE_DEFAULT_KERNELS, forward: 'implicit 4x4', submitBatch: 15 },
  { label: 'Condense default + forward conv as implicit product 8×4', uploads: 'queue.writeBuffer', kernels: CONDENSE_DEFAULT_KERNELS, forward: 'implicit 8x4', submitBatch: 15 },
  {
    label: 'Condense default, forward conv and input gradient 8×4',
    uploads: 'queue.writeBuffer',
    kernels: CONDENSE_DEFAULT_KERNELS,
    forward: 'implicit 8x4',
    gemmTile: '8x4',
    submitBatch: 15,
  },
  {
    label: 'Condense default, stride-1 input gradients as forward convs',
    uploads: 'queue.writeBuffer',
    kernels: CONDENSE_DEFAULT_KERNELS,
    inputGradient: stride1AsForwardConv,
    submitBatch: 15,
  },
  {
    label: 'Condense default, stride-1 input gradients as forward convs, forward conv implicit 8×4',
    uploads: 'queue.writeBuffer',
    kernels: CONDENSE_DEFAULT_KERNELS,
    inputGradient: stride1AsForwardConv,
    forward: 'implicit 8x4',
    submitBatch: 15,
  },
];
const DEFAULT_CONFIGURATION = 7;
/**
 * Timed unless --configurations says otherwise: the BN kernels (6, 7), the forward conv as an implicit
 * product (11, 12) and the stride-1 input gradients through forward convs (14, 15); the others were
 * measured on an H200 at 09ce524 (bench/results/webgpu-09ce524.log.txt) or 203071f
 * (webgpu-203071f.log.txt) and are left out to keep one run within the GPU host's 10 minutes a command.
 */
const DEFAULT_TIMED_CONFIGURATIONS = [6, 7, 11, 12, 14, 15];

function configure(backend: Backend, c: Configuration): void {
  if (c.uploads === 'shipped') useShippedUploads(backend);
  else useQueueWriteUploads(backend);
  restoreShippedWebgpuKernels(SWITCHED_KERNELS.filter((k) => !c.kernels.includes(k)));
  useCondenseWebgpuKernels(c.kernels);
  if (c.inputGradient !== undefined || c.gemmTile !== undefined) useInputGradientVariant({ choose: c.inputGradient, tile: c.gemmTile });
  useForwardVariant(c.forward ?? 'shipped');
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', c.submitBatch);
}

interface StepResult {
  configuration: string;
  model: BenchModel['id'];
  work: Work;
  timing: StepTiming;
  /** GPU device errors while it ran (each drops a command buffer: the timing is then not of the whole step). */
  deviceErrors: number;
}

interface TorchRun {
  torch: string;
  device?: string;
  tf32?: { cudnn: boolean; matmul: boolean };
  results: Record<string, Record<Work, StepTiming>>;
}

/** PyTorch on CUDA; `fp32` turns TF32 off (PyTorch's default lets cuDNN convs use it). */
function runTorch(python: string, steps: number, warmup: number, seed: number, models: string[], fp32: boolean): TorchRun | undefined {
  const script = path.join(repoRoot(), 'bench', 'torch', 'backend.py');
  try {
    log(`PyTorch CUDA${fp32 ? ' (no TF32)' : ''}: ${models.join(', ')}`);
    const args = [script, '--device', 'cuda', '--threads', '1', '--steps', String(steps), '--warmup', String(warmup), '--seed', String(seed), '--models', models.join(',')];
    const out = execFileSync(python, fp32 ? [...args, '--no-tf32'] : args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return JSON.parse(out) as TorchRun;
  } catch (err) {
    log(`PyTorch CUDA did not run: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    return undefined;
  }
}

async function profileStep(bm: BenchModel, work: Work, seed: number): Promise<Array<{ kernel: string; calls: number; ms: number }>> {
  const workload = makeWorkload(bm, work, seed);
  await workload.step();
  const profile = await tf.profile(async () => {
    await workload.step();
  });
  const byKernel = new Map<string, { calls: number; ms: number }>();
  for (const k of profile.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : Number.NaN;
    const entry = byKernel.get(k.name) ?? { calls: 0, ms: 0 };
    entry.calls += 1;
    entry.ms += ms;
    byKernel.set(k.name, entry);
  }
  workload.dispose();
  return [...byKernel.entries()].map(([kernel, v]) => ({ kernel, ...v })).sort((a, b) => b.ms - a.ms);
}

async function main(): Promise<void> {
  const options = new Command()
    .option('--steps <n>', 'timed steps per measurement', '10')
    .option('--warmup <n>', 'untimed steps before timing (in each round)', '3')
    .option('--rounds <n>', 'rounds over the configurations; steps are split between them', '3')
    .option('--models <list>', 'models', 'resnet18,resnet20')
    .option('--python <path>', 'Python with torch and CUDA', 'python3')
    .option('--no-torch', 'skip PyTorch')
    .option('--no-checks', 'skip the kernel checks')
    .option('--kernel-repeats <n>', 'calls per conv-kernel timing (0 skips them)', '10')
    .option(
      '--configurations <list>',
      `indices of the step configurations to time (0-${CONFIGURATIONS.length - 1}; by default those not measured on an H200 yet, and the last measured default)`,
      DEFAULT_TIMED_CONFIGURATIONS.join(','),
    )
    .option('--profile', 'per-kernel GPU times of one step of each model and work (needs CONDENSE_WEBGPU_DAWN_OPTIONS=enable-dawn-features=allow_unsafe_apis)')
    .option('--seed <n>', 'seed of weights and data', '0')
    .parse()
    .opts<{ steps: string; warmup: string; rounds: string; models: string; python: string; torch: boolean; checks: boolean; kernelRepeats: string; configurations: string; profile?: boolean; seed: string }>();
  const steps = Number(options.steps);
  const warmup = Number(options.warmup);
  const seed = Number(options.seed);
  const models = options.models.split(',').map((id) => {
    const bm = BENCH_MODELS.find((m) => m.id === id.trim());
    if (bm === undefined) throw new Error(`unknown model '${id}'; use ${BENCH_MODELS.map((m) => m.id).join(', ')}`);
    return bm;
  });

  const info = await initTensorBackend('webgpu');
  const backend = tf.backend() as unknown as Backend;
  log(`backend: ${info.detail}`);

  const checks = options.checks ? await kernelChecks() : [];
  if (checks.length > 0) {
    printTable('kernel checks against the cpu backend (relative max error)', ['check', 'error', 'tolerance', 'ok'], checks.map((c) => [c.check, c.error, c.tolerance, c.ok ? 'yes' : 'NO']), [0, 8, 8, 0]);
  }

  const kernelTimes = Number(options.kernelRepeats) > 0 ? await timeConvKernels(Number(options.kernelRepeats)) : [];
  if (kernelTimes.length > 0) {
    printTable(
      'conv kernels alone, CIFAR ResNet-18 shapes (batch 128): GPU ms per call from device timestamps (TFLOP/s)',
      ['kernel', 'conv', 'GFLOP', ...KERNEL_VARIANT_COLUMNS, 'Condense default over shipped', 'fastest'],
      kernelTimes.map((r) => {
        const cell = (ms: number | undefined) => (ms === undefined ? undefined : `${ms.toFixed(2)} (${(r.gflop / ms).toFixed(1)})`);
        const fastest = Object.entries(r.ms).reduce((a, b) => (b[1] < a[1] ? b : a));
        return [r.kernel, r.shape, r.gflop, ...KERNEL_VARIANT_COLUMNS.map((v) => cell(r.ms[v])), r.ms.Condense === undefined ? undefined : r.ms.shipped / r.ms.Condense, fastest[0]];
      }),
      [0, 0, 2, ...KERNEL_VARIANT_COLUMNS.map(() => 0), 1, 0],
    );
  }
  configure(backend, CONFIGURATIONS[DEFAULT_CONFIGURATION]);

  const configurations = options.configurations.split(',').filter(Boolean).map((i) => {
    const c = CONFIGURATIONS[Number(i)];
    if (c === undefined) throw new Error(`unknown configuration '${i}'; use 0-${CONFIGURATIONS.length - 1}`);
    return c;
  });
  // Rounds: every configuration's steps in turn, `rounds` times, pooled afterwards, so that drift of the
  // machine over the run (seen: the same kernels 57 ms early in a run and 104 ms late) falls on all.
  const rounds = Math.max(1, Math.min(Number(options.rounds), steps));
  const parts = new Map<string, StepResult[]>();
  for (let round = 0; round < rounds; round++) {
    const stepsInRound = Math.floor(steps / rounds) + (round < steps % rounds ? 1 : 0);
    for (const c of configurations) {
      configure(backend, c);
      for (const bm of models) {
        for (const work of WORKS) {
          log(`round ${round + 1}/${rounds}, ${c.label}: ${bm.id} ${work}`);
          const workload = makeWorkload(bm, work, seed);
          const errorsBefore = webgpuErrorCount();
          await timeSteps(workload.step, 0, warmup);
          const before = tf.memory().numTensors;
          const timing = { ...(await timeSteps(workload.step, stepsInRound, 0)), warmup };
          const leaked = tf.memory().numTensors - before;
          workload.dispose();
          if (leaked !== 0) log(`warning: ${leaked} tensors left after ${stepsInRound} steps`);
          // Errors are reported asynchronously: wait for the queue before counting them.
          const probe = tf.tidy(() => tf.add(tf.zeros([1]), 1));
          await probe.data();
          probe.dispose();
          const deviceErrors = webgpuErrorCount() - errorsBefore;
          if (deviceErrors > 0) log(`${deviceErrors} GPU device errors during ${c.label} ${bm.id} ${work}: timing invalid`);
          const key = `${c.label}/${bm.id}/${work}`;
          parts.set(key, [...(parts.get(key) ?? []), { configuration: c.label, model: bm.id, work, timing, deviceErrors }]);
        }
      }
    }
  }
  const results: StepResult[] = [...parts.values()].map((p) => ({
    ...p[0],
    timing: pooledTiming(p.map((r) => r.timing)),
    deviceErrors: p.reduce((n, r) => n + r.deviceErrors, 0),
  }));
  configure(backend, CONFIGURATIONS[DEFAULT_CONFIGURATION]);

  const torchSteps = Math.max(steps, 20);
  const torchWarmup = Math.max(warmup, 5);
  const torch = options.torch ? runTorch(options.python, torchSteps, torchWarmup, seed, models.map((m) => m.id), false) : undefined;
  const torchFp32 = options.torch ? runTorch(options.python, torchSteps, torchWarmup, seed, models.map((m) => m.id), true) : undefined;
  const torchMs = (model: string, work: Work) => torch?.results[model]?.[work]?.medianMs;
  const torchFp32Ms = (model: string, work: Work) => torchFp32?.results[model]?.[work]?.medianMs;
  const rows: Cell[][] = results.map((r) => {
    const t = torchMs(r.model, r.work);
    const t32 = torchFp32Ms(r.model, r.work);
    return [
      r.configuration,
      BENCH_MODELS.find((m) => m.id === r.model)!.label,
      WORK_LABEL[r.work],
      r.timing.medianMs,
      r.timing.minMs,
      t,
      t === undefined ? undefined : r.timing.medianMs / t,
      t32,
      t32 === undefined ? undefined : r.timing.medianMs / t32,
      r.deviceErrors > 0 ? `INVALID: ${r.deviceErrors} device errors` : 'ok',
    ];
  });
  printTable(
    `ms per step on webgpu (${info.detail}), median of ${steps} (${rounds} rounds over the configurations, ${warmup} warm-up each); PyTorch CUDA ${torch?.torch ?? 'not run'} ${torch?.device ?? ''}, median of ${torchSteps} after ${torchWarmup}`,
    ['configuration', 'model', 'work', 'tfjs ms', 'tfjs min ms', 'PyTorch ms (default, TF32 convs)', 'ratio', 'PyTorch ms (fp32)', 'ratio fp32', 'GPU errors'],
    rows,
    [0, 0, 0, 1, 1, 2, 1, 2, 1, 0],
  );

  const targets: Cell[][] = [];
  const best = (model: string, work: Work) => {
    const own = results.filter((r) => r.model === model && r.work === work && r.deviceErrors === 0);
    return own.length === 0 ? undefined : own.reduce((a, b) => (a.timing.medianMs <= b.timing.medianMs ? a : b));
  };
  for (const [work, limit] of [['inversion', 3], ['train', 10]] as Array<[Work, number]>) {
    const r = best('resnet18', work);
    const t = torchMs('resnet18', work);
    if (r === undefined) continue;
    const ratio = t === undefined ? undefined : r.timing.medianMs / t;
    targets.push([`CIFAR ResNet-18 (batch 128): ${WORK_LABEL[work]}`, r.configuration, r.timing.medianMs, t, ratio, `≤ ${limit}`, ratio === undefined ? 'no PyTorch' : ratio <= limit ? 'yes' : 'NO']);
  }
  if (targets.length > 0) {
    printTable("issue 4's GPU targets: Condense webgpu over PyTorch CUDA, this run", ['work', 'configuration', 'Condense ms', 'PyTorch ms', 'ratio', 'target', 'met'], targets, [0, 0, 1, 2, 1, 0, 0]);
  }

  const profiles: Record<string, Array<{ kernel: string; calls: number; ms: number }>> = {};
  if (options.profile) {
    for (const bm of models) {
      for (const work of WORKS) {
        const p = await profileStep(bm, work, seed);
        profiles[`${bm.id}/${work}`] = p;
        const total = p.reduce((a, k) => a + k.ms, 0);
        printTable(`GPU time per kernel, one ${bm.id} ${work} step (Condense default), total ${total.toFixed(1)} ms`, ['kernel', 'calls', 'ms', 'share'], p.slice(0, 15).map((k) => [k.kernel, k.calls, k.ms, k.ms / total]), [0, 0, 2, 2]);
      }
    }
  }

  const errors = webgpuErrors();
  if (errors.length > 0) log(`${errors.length} GPU device errors in this run; first: ${errors[0]}`);
  const target = writeBenchResults('webgpu', seed, { checks, convKernels: kernelTimes, steps: results, torch, torchFp32, targets, profiles, deviceErrors: errors }, { backend: info, steps, warmup, rounds });
  log(`results written to ${target}`);
  if (checks.some((c) => !c.ok) || errors.length > 0) process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
