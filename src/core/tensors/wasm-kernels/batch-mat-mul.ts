import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput, release, runWasmKernel } from './kernel-calls';
import { runShippedKernel } from './shipped';

/**
 * BatchMatMul with transposeA/transposeB done as an explicit Transpose first. tfjs-backend-wasm's
 * kernel is 6–8× slower on a transposed operand than a transpose plus the plain product (dense
 * layers' gradients, dA = dy·Bᵀ and dB = Aᵀ·dy, hit exactly that case).
 */
function batchMatMul(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const { backend } = args;
  const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
  let a = kernelInput(args.inputs, 'a', tf.BatchMatMul);
  let b = kernelInput(args.inputs, 'b', tf.BatchMatMul);
  if ((!transposeA && !transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32') return runShippedKernel(tf.BatchMatMul, args);
  const swapLast = (t: tf.TensorInfo) => {
    const perm = t.shape.map((_, i) => i);
    const n = perm.length;
    [perm[n - 2], perm[n - 1]] = [perm[n - 1], perm[n - 2]];
    return runWasmKernel(backend, tf.Transpose, { x: t }, { perm });
  };
  const intermediates: tf.TensorInfo[] = [];
  try {
    if (transposeA) intermediates.push((a = swapLast(a)));
    if (transposeB) intermediates.push((b = swapLast(b)));
    return runShippedKernel(tf.BatchMatMul, { inputs: { a, b }, backend, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
  } finally {
    for (const t of intermediates) release(backend, t);
  }
}

export const batchMatMulConfig: tf.KernelConfig = {
  kernelName: tf.BatchMatMul,
  backendName: 'wasm',
  kernelFunc: batchMatMul as unknown as tf.KernelFunc,
};
