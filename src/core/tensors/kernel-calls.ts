import * as tf from '@tensorflow/tfjs';

/**
 * Helpers for kernels composed of other kernels of the same backend. Intermediates are raw
 * TensorInfos (never seen by the engine), so whoever creates one frees it with the backend's
 * `disposeData`.
 */

/** Runs the kernel `kernelName` registered for `backendName` and returns its single output. */
export function runKernelOn(
  backendName: string,
  backend: tf.KernelBackend,
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): tf.TensorInfo {
  const config = tf.getKernel(kernelName, backendName);
  if (config === undefined) {
    throw new Error(`${backendName} kernel ${kernelName} is not registered; it is needed to compose another kernel`);
  }
  const out = config.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) {
    throw new Error(`${backendName} kernel ${kernelName} returned ${out.length} outputs where one was expected`);
  }
  return out;
}

/** Input `name` of a kernel call; tfjs' input maps type every entry as optional. */
export function kernelInput(inputs: tf.NamedTensorInfoMap, name: string, kernelName: string): tf.TensorInfo {
  const info = inputs[name];
  if (info === undefined) throw new Error(`kernel ${kernelName} was called without its input '${name}'`);
  return info;
}

/**
 * Registers `config` in place of the kernel its backend has under that name. Returns the kernel it
 * displaced, or undefined when there was none or `config` was already registered.
 */
export function replaceKernel(config: tf.KernelConfig): tf.KernelConfig | undefined {
  const existing = tf.getKernel(config.kernelName, config.backendName);
  if (existing === config) return undefined;
  if (existing !== undefined) tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
  return existing;
}
