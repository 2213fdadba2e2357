import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * tfjs-backend-wasm's own kernels that Condense replaced. A replacement that handles only some
 * cases runs the shipped kernel for the others; its setup (binding the wasm function) runs at
 * backend start-up only for registered kernels, so it is run here on first use.
 */
const shipped = new Map<string, tf.KernelConfig>();
const setUp = new WeakMap<object, Set<string>>();

export function rememberShippedKernel(config: tf.KernelConfig): void {
  shipped.set(config.kernelName, config);
}

export function shippedKernel(kernelName: string): tf.KernelConfig | undefined {
  return shipped.get(kernelName);
}

export function runShippedKernel(
  kernelName: string,
  args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap },
): tf.TensorInfo {
  const config = shipped.get(kernelName);
  if (config === undefined) throw new Error(`the shipped wasm kernel ${kernelName} was not kept; cannot fall back to it`);
  let done = setUp.get(args.backend);
  if (done === undefined) setUp.set(args.backend, (done = new Set()));
  if (!done.has(kernelName)) {
    config.setupFunc?.(args.backend);
    done.add(kernelName);
  }
  const out = config.kernelFunc(args);
  if (Array.isArray(out)) throw new Error(`shipped wasm kernel ${kernelName} returned several outputs`);
  return out;
}
