import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

/** What tfjs passes a webgpu kernel. */
export type WebgpuKernelArgs = { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: tf.NamedAttrMap };

/** A webgpu kernel registration for `kernelFunc` (tfjs types its backend loosely). */
export function webgpuKernelConfig(kernelName: string, kernelFunc: (args: WebgpuKernelArgs) => tf.TensorInfo): tf.KernelConfig {
  return { kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}
