import * as tf from '@tensorflow/tfjs';

/** tfjs-backend-webgpu's own kernels that Condense replaced; replacements fall back to them. */
const shipped = new Map<string, tf.KernelConfig>();

export function rememberShippedWebgpuKernel(config: tf.KernelConfig): void {
  shipped.set(config.kernelName, config);
}

export function shippedWebgpuKernel(kernelName: string): tf.KernelConfig | undefined {
  return shipped.get(kernelName);
}

export function shippedWebgpuKernels(): tf.KernelConfig[] {
  return [...shipped.values()];
}

export function shippedWebgpuKernelFunc(kernelName: string): tf.KernelFunc {
  const config = shipped.get(kernelName);
  if (config === undefined) throw new Error(`the shipped webgpu kernel ${kernelName} was not kept; cannot fall back to it`);
  return config.kernelFunc;
}
