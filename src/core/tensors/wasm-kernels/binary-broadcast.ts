import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput } from './kernel-calls';
import { runShippedKernel } from './shipped';

/**
 * Multiply, Add and Sub of float32 tensors in JavaScript over the wasm heap when one operand has
 * the result's shape and the other is the same shape, a scalar, or a vector over the trailing
 * axes (a BatchNorm's per-channel [C] or [1,1,1,C]). tfjs-backend-wasm's broadcasting binary ops
 * index every element through the broadcast shapes and ran 3–4× slower than this loop (the
 * products and sums of float32 values are exact in float64, so results are the same floats).
 * Every other case runs the shipped kernel.
 */
type Op = (a: Float32Array, b: Float32Array, out: Float32Array, period: number, fullIsA: boolean) => void;

/** How the smaller operand repeats: its size, when its shape is a trailing part of `full` (leading 1s allowed). */
function trailingPeriod(small: readonly number[], full: readonly number[]): number {
  const trimmed = [...small];
  while (trimmed.length > 0 && trimmed[0] === 1) trimmed.shift();
  if (trimmed.length > full.length) return -1;
  const tail = full.slice(full.length - trimmed.length);
  return trimmed.every((d, i) => d === tail[i]) ? trimmed.reduce((n, d) => n * d, 1) : -1;
}

function makeBinary(kernelName: string, op: Op) {
  return (args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo => {
    const { backend } = args;
    const a = kernelInput(args.inputs, 'a', kernelName);
    const b = kernelInput(args.inputs, 'b', kernelName);
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return runShippedKernel(kernelName, args);
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const size = outShape.reduce((n, d) => n * d, 1);
    const aIsFull = a.shape.length === outShape.length && a.shape.every((d, i) => d === outShape[i]);
    const bIsFull = b.shape.length === outShape.length && b.shape.every((d, i) => d === outShape[i]);
    if (size === 0 || (!aIsFull && !bIsFull)) return runShippedKernel(kernelName, args);
    const fullIsA = aIsFull;
    const period = trailingPeriod(fullIsA ? b.shape : a.shape, outShape);
    if (period <= 0) return runShippedKernel(kernelName, args);
    // Allocate before taking views: growing the heap would detach views taken earlier.
    const out = backend.makeOutput(outShape, 'float32');
    const result = backend.typedArrayFromHeap(out) as Float32Array;
    op(backend.typedArrayFromHeap(a) as Float32Array, backend.typedArrayFromHeap(b) as Float32Array, result, period, fullIsA);
    return out;
  };
}

// One loop per operator and operand order, so each stays monomorphic and branch-free inside.
const multiply: Op = (a, b, out, period, fullIsA) => {
  const full = fullIsA ? a : b;
  const small = fullIsA ? b : a;
  const n = out.length;
  if (period === n) for (let i = 0; i < n; i++) out[i] = full[i] * small[i];
  else for (let i = 0; i < n; i += period) for (let j = 0; j < period; j++) out[i + j] = full[i + j] * small[j];
};

const add: Op = (a, b, out, period, fullIsA) => {
  const full = fullIsA ? a : b;
  const small = fullIsA ? b : a;
  const n = out.length;
  if (period === n) for (let i = 0; i < n; i++) out[i] = full[i] + small[i];
  else for (let i = 0; i < n; i += period) for (let j = 0; j < period; j++) out[i + j] = full[i + j] + small[j];
};

const subtract: Op = (a, b, out, period, fullIsA) => {
  const n = out.length;
  if (period === n) for (let i = 0; i < n; i++) out[i] = a[i] - b[i];
  else if (fullIsA) for (let i = 0; i < n; i += period) for (let j = 0; j < period; j++) out[i + j] = a[i + j] - b[j];
  else for (let i = 0; i < n; i += period) for (let j = 0; j < period; j++) out[i + j] = a[j] - b[i + j];
};

export const multiplyConfig: tf.KernelConfig = { kernelName: tf.Multiply, backendName: 'wasm', kernelFunc: makeBinary(tf.Multiply, multiply) as unknown as tf.KernelFunc };
export const addConfig: tf.KernelConfig = { kernelName: tf.Add, backendName: 'wasm', kernelFunc: makeBinary(tf.Add, add) as unknown as tf.KernelFunc };
export const subConfig: tf.KernelConfig = { kernelName: tf.Sub, backendName: 'wasm', kernelFunc: makeBinary(tf.Sub, subtract) as unknown as tf.KernelFunc };
