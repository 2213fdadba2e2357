import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput } from './kernel-calls';
import { runShippedKernel } from './shipped';

/**
 * Identity, and Cast to the dtype a tensor already has, as a shared reference to the same data
 * (reference counted, as the wasm backend's own Reshape and the cpu backend's Identity do) instead
 * of a copy. Tensors are immutable and no wasm kernel writes into its inputs, so sharing is safe.
 * tfjs-backend-wasm copies; with hundreds of calls per step (gradient bookkeeping, layers' casts)
 * the copies were 4–8% of a ResNet-20 step. Strings and real casts run the shipped kernels.
 */
function share(backend: BackendWasm, x: tf.TensorInfo): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function identity(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const x = kernelInput(args.inputs, 'x', tf.Identity);
  if (x.dtype === 'string') return runShippedKernel(tf.Identity, args);
  return share(args.backend, x);
}

function cast(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const x = kernelInput(args.inputs, 'x', tf.Cast);
  const { dtype } = args.attrs as unknown as { dtype: tf.DataType };
  if (x.dtype === 'string' || dtype !== x.dtype) return runShippedKernel(tf.Cast, args);
  return share(args.backend, x);
}

export const identityZeroCopyConfig: tf.KernelConfig = {
  kernelName: tf.Identity,
  backendName: 'wasm',
  kernelFunc: identity as unknown as tf.KernelFunc,
};

export const castZeroCopyConfig: tf.KernelConfig = {
  kernelName: tf.Cast,
  backendName: 'wasm',
  kernelFunc: cast as unknown as tf.KernelFunc,
};
