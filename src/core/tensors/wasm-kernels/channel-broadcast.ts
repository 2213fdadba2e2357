import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput, release, runWasmKernel } from './kernel-calls';
import { runShippedKernel } from './shipped';

/**
 * Per-channel arithmetic on NHWC tensors. tfjs-backend-wasm's broadcasting Multiply/Add/Sub walk
 * the output with per-element index arithmetic when the broadcast operand is a vector over the
 * last axis: 2.1 ms for a [128, 32, 32, 16] tensor (3× an elementwise product of two full
 * tensors), 3.2 ms with 6 channels. Its FusedBatchNorm computes (x − mean)·scale/√(var + ε) +
 * offset per element: 10 ms on the same tensor.
 *
 * - Multiply/Add/Sub by a channel vector: the vector is first repeated to the full shape (one
 *   copy, doubling, in memory order), then the shipped kernel runs on two full tensors. The
 *   arithmetic is the shipped kernel's own, so results are identical, NaN and ±∞ included.
 * - FusedBatchNorm: its statistics fold into w = scale/√(var + ε) and b = offset − mean·w, then
 *   y = x·w + b is one XNNPACK depthwise 1×1 conv (0.9 ms). XNNPACK clamps its output to
 *   [−∞, ∞], which turns NaN into −∞, so the per-channel means of y are checked (one pooled pass)
 *   and any non-finite one sends the whole tensor through the shipped kernel instead. Folding
 *   rounds differently from the shipped kernel, within float32 rounding.
 *
 * Everything else (other broadcasts, dtypes, small or wide-channel tensors) runs the shipped kernel.
 */

/** Below this many elements the shipped binary kernels are as fast as a copy plus a full op. */
export const CHANNEL_PATH_MIN_ELEMENTS = 16384;
/** With more channels the shipped broadcast is as fast as the copy plus a full op (measured at 32). */
export const CHANNEL_PATH_MAX_CHANNELS = 16;
/** FusedBatchNorm's shipped kernel is slow at every size; below this its call is still cheaper. */
const BATCH_NORM_MIN_ELEMENTS = 1024;

type Args = { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap };

/** True when `v` broadcast against `full` is one value per channel of full's last axis, nothing else. */
function isChannelVector(v: tf.TensorInfo, full: tf.TensorInfo): boolean {
  const rank = full.shape.length;
  if (rank < 2 || v.shape.length === 0 || v.shape.length > rank) return false;
  const channels = full.shape[rank - 1];
  return v.shape[v.shape.length - 1] === channels && tf.util.sizeFromShape(v.shape) === channels && tf.util.sizeFromShape(full.shape) > channels;
}

/** The full operand and the channel vector of a binary op, when the channel path applies. */
function channelOperands(a: tf.TensorInfo, b: tf.TensorInfo): { full: tf.TensorInfo; vector: tf.TensorInfo; vectorFirst: boolean } | undefined {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  for (const [full, vector, vectorFirst] of [
    [a, b, false],
    [b, a, true],
  ] as const) {
    const channels = full.shape[full.shape.length - 1];
    if (channels <= CHANNEL_PATH_MAX_CHANNELS && tf.util.sizeFromShape(full.shape) >= CHANNEL_PATH_MIN_ELEMENTS && isChannelVector(vector, full)) return { full, vector, vectorFirst };
  }
  return undefined;
}

/** Whether a binary op of `a` and `b` takes the channel path (for tests and profiles). */
export function channelPathApplies(a: tf.TensorInfo, b: tf.TensorInfo): boolean {
  return channelOperands(a, b) !== undefined;
}

/** `vector` repeated along every axis but the last to `shape`: one set, then copies of doubling length. */
function repeatToShape(backend: BackendWasm, vector: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  // Copy the values out before allocating: growing the heap detaches views taken earlier.
  const values = Float32Array.from(backend.typedArrayFromHeap(vector) as Float32Array);
  const out = backend.makeOutput(shape, 'float32');
  const into = backend.typedArrayFromHeap(out) as Float32Array;
  into.set(values);
  for (let filled = values.length; filled < into.length; ) {
    const n = Math.min(filled, into.length - filled);
    into.copyWithin(filled, 0, n);
    filled += n;
  }
  return out;
}

function binary(kernelName: string) {
  return (args: Args): tf.TensorInfo => {
    const operands = channelOperands(kernelInput(args.inputs, 'a', kernelName), kernelInput(args.inputs, 'b', kernelName));
    if (operands === undefined) return runShippedKernel(kernelName, args);
    const { backend } = args;
    const repeated = repeatToShape(backend, operands.vector, operands.full.shape);
    try {
      const inputs = operands.vectorFirst ? { a: repeated, b: operands.full } : { a: operands.full, b: repeated };
      return runShippedKernel(kernelName, { ...args, inputs });
    } finally {
      release(backend, repeated);
    }
  };
}

/**
 * x·w + b over x's last axis, as one XNNPACK depthwise 1×1 conv over x's pixels; shaped like x.
 * `weights` and `bias` are rank-1 [C]. NaN comes out as −∞ (XNNPACK's output clamp): callers check.
 */
function channelAffine(backend: BackendWasm, x: tf.TensorInfo, weights: tf.TensorInfo, bias: tf.TensorInfo): tf.TensorInfo {
  const channels = x.shape[x.shape.length - 1];
  const pixels: tf.TensorInfo = { dataId: x.dataId, shape: [tf.util.sizeFromShape(x.shape) / channels, 1, 1, channels], dtype: x.dtype };
  const filter: tf.TensorInfo = { dataId: weights.dataId, shape: [1, 1, channels, 1], dtype: 'float32' };
  const rows = runWasmKernel(backend, tf.FusedDepthwiseConv2D, { x: pixels, filter, bias }, {
    strides: [1, 1],
    pad: 'valid',
    dilations: [1, 1],
    dataFormat: 'NHWC',
    activation: 'linear',
  });
  const out = runWasmKernel(backend, tf.Reshape, { x: rows }, { shape: x.shape });
  release(backend, rows);
  return out;
}

/** Whether every per-channel mean of `y` (over all leading axes) is finite: no NaN, −∞ or +∞ anywhere in y. */
function allFinite(backend: BackendWasm, y: tf.TensorInfo): boolean {
  const leading = Array.from({ length: y.shape.length - 1 }, (_, i) => i);
  const means = runWasmKernel(backend, tf.Mean, { x: y }, { axis: leading, keepDims: false });
  try {
    return (backend.typedArrayFromHeap(means) as Float32Array).every(Number.isFinite);
  } finally {
    release(backend, means);
  }
}

/** The C values of a per-channel operand (a channel vector or one value for all), or undefined. */
function perChannel(backend: BackendWasm, t: tf.TensorInfo | undefined, channels: number, fallback: number): Float64Array | undefined {
  const out = new Float64Array(channels);
  if (t === undefined) return out.fill(fallback);
  if (t.dtype !== 'float32') return undefined;
  const n = tf.util.sizeFromShape(t.shape);
  const lastOk = t.shape.length === 0 || t.shape[t.shape.length - 1] === n;
  if (!lastOk || (n !== channels && n !== 1)) return undefined;
  const values = backend.typedArrayFromHeap(t) as Float32Array;
  for (let c = 0; c < channels; c++) out[c] = values[n === 1 ? 0 : c];
  return out;
}

function fusedBatchNorm(args: Args): tf.TensorInfo {
  const { backend } = args;
  const x = kernelInput(args.inputs, 'x', tf.FusedBatchNorm);
  const { varianceEpsilon } = args.attrs as unknown as { varianceEpsilon: number };
  const rank = x.shape.length;
  if (x.dtype !== 'float32' || rank < 2 || tf.util.sizeFromShape(x.shape) < BATCH_NORM_MIN_ELEMENTS) return runShippedKernel(tf.FusedBatchNorm, args);
  const channels = x.shape[rank - 1];
  const mean = perChannel(backend, kernelInput(args.inputs, 'mean', tf.FusedBatchNorm), channels, 0);
  const variance = perChannel(backend, kernelInput(args.inputs, 'variance', tf.FusedBatchNorm), channels, 1);
  const scale = perChannel(backend, args.inputs.scale, channels, 1);
  const offset = perChannel(backend, args.inputs.offset, channels, 0);
  if (!mean || !variance || !scale || !offset) return runShippedKernel(tf.FusedBatchNorm, args);
  const w = new Float32Array(channels);
  const b = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    w[c] = scale[c] / Math.sqrt(variance[c] + varianceEpsilon);
    b[c] = offset[c] - mean[c] * w[c];
  }
  const weights = backend.makeOutput([channels], 'float32', undefined, w);
  const bias = backend.makeOutput([channels], 'float32', undefined, b);
  let y: tf.TensorInfo;
  try {
    y = channelAffine(backend, x, weights, bias);
  } finally {
    release(backend, weights);
    release(backend, bias);
  }
  if (allFinite(backend, y)) return y;
  release(backend, y);
  return runShippedKernel(tf.FusedBatchNorm, args);
}

/** Name of the kernel behind `channelAffineOfFinite` (src/core/tensors/channel-affine.ts). */
export const CHANNEL_AFFINE_KERNEL = 'CondenseChannelAffine';

/**
 * x·w + b per channel of x's last axis (w, b: C values; b optional) as one depthwise conv, without
 * a finiteness check: NaN in the result comes out as −∞. Only for callers that know x, w and b
 * are finite (then x·w + b has no NaN).
 */
function channelAffineKernel(args: Args): tf.TensorInfo {
  const { backend } = args;
  const x = kernelInput(args.inputs, 'x', CHANNEL_AFFINE_KERNEL);
  const channels = x.shape[x.shape.length - 1];
  const vector = (t: tf.TensorInfo | undefined, fallback: number): tf.TensorInfo => {
    if (t !== undefined && tf.util.sizeFromShape(t.shape) !== channels) throw new Error(`${CHANNEL_AFFINE_KERNEL}: a per-channel operand has shape ${JSON.stringify(t.shape)}, not ${channels} values`);
    const values = t === undefined ? new Float32Array(channels).fill(fallback) : Float32Array.from(backend.typedArrayFromHeap(t) as Float32Array);
    return backend.makeOutput([channels], 'float32', undefined, values);
  };
  const weights = vector(kernelInput(args.inputs, 'weights', CHANNEL_AFFINE_KERNEL), 1);
  const bias = vector(args.inputs.bias, 0);
  try {
    return channelAffine(backend, x, weights, bias);
  } finally {
    release(backend, weights);
    release(backend, bias);
  }
}

const config = (kernelName: string, kernelFunc: (args: Args) => tf.TensorInfo): tf.KernelConfig => ({
  kernelName,
  backendName: 'wasm',
  kernelFunc: kernelFunc as unknown as tf.KernelFunc,
});

export const multiplyChannelConfig = config(tf.Multiply, binary(tf.Multiply));
export const addChannelConfig = config(tf.Add, binary(tf.Add));
export const subChannelConfig = config(tf.Sub, binary(tf.Sub));
export const fusedBatchNormChannelConfig = config(tf.FusedBatchNorm, fusedBatchNorm);
export const channelAffineConfig = config(CHANNEL_AFFINE_KERNEL, channelAffineKernel);
