import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput, runKernelOn } from '../kernel-calls';

export { kernelInput };

/**
 * Helpers for kernels that are composed of other wasm kernels. Intermediates are raw TensorInfos
 * (never seen by the engine), so whoever creates one must release it with `release`.
 */

/** Runs another kernel registered for 'wasm' and returns its single output. */
export function runWasmKernel(
  backend: BackendWasm,
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): tf.TensorInfo {
  return runKernelOn('wasm', backend, kernelName, inputs, attrs);
}

/** Frees an intermediate produced by `runWasmKernel` (kernels may share data by reference count). */
export function release(backend: BackendWasm, info: tf.TensorInfo): void {
  backend.disposeData(info.dataId);
}

/**
 * Runs the cpu backend's kernel of the same name on copies of the inputs and writes its result into
 * the wasm backend. For rarely used kernels where a wasm-native composition is not worth it.
 */
export function delegateToCpu(
  backend: BackendWasm,
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  inputNames: readonly string[],
  attrs: tf.NamedAttrMap,
): tf.TensorInfo {
  const cpuBackend = tf.findBackend('cpu');
  const cpuKernel = tf.getKernel(kernelName, 'cpu');
  if (cpuBackend == null || cpuKernel === undefined) {
    throw new Error(`cannot run ${kernelName} for wasm: the cpu backend or its kernel is not available`);
  }
  const cpuInputs: Record<string, tf.TensorInfo> = {};
  for (const name of inputNames) {
    const info = kernelInput(inputs, name, kernelName);
    // The wasm backend's readSync copies out of its heap, so the cpu backend owns these values.
    const values = backend.readSync(info.dataId) as tf.TypedArray;
    cpuInputs[name] = { dataId: cpuBackend.write(values, info.shape, info.dtype), shape: info.shape, dtype: info.dtype };
  }
  try {
    const out = cpuKernel.kernelFunc({ inputs: cpuInputs, backend: cpuBackend, attrs });
    if (Array.isArray(out)) throw new Error(`cpu kernel ${kernelName} returned several outputs`);
    const values = cpuBackend.readSync(out.dataId) as tf.TypedArray;
    cpuBackend.disposeData(out.dataId);
    return backend.makeOutput(out.shape, out.dtype, undefined, values);
  } finally {
    for (const info of Object.values(cpuInputs)) cpuBackend.disposeData(info.dataId);
  }
}
