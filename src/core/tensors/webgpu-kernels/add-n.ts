import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { shippedWebgpuKernelFunc } from './shipped';

/**
 * AddN within the device's storage-buffer limit.
 *
 * tfjs-backend-webgpu 4.22 binds every input of AddN as its own storage buffer. Dawn's default limit
 * is 8 per shader stage (output included), and tfjs does not raise it: an AddN of 20 terms (the
 * BatchNorm-statistics loss of ResNet-18 sums one term per BN layer) made an invalid pipeline, and
 * the whole command buffer it was recorded in was dropped with only a console message. Here inputs
 * are summed in groups that fit, then the group sums, until one tensor is left.
 */

/** Inputs per shipped AddN call: the device's storage buffers per stage, less one for the output. */
export function addNGroupSize(backend: WebGPUBackend): number {
  const limit = (backend as unknown as { device: { limits: { maxStorageBuffersPerShaderStage?: number } } }).device.limits.maxStorageBuffersPerShaderStage ?? 8;
  return Math.max(2, limit - 1);
}

function addN(args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const { backend } = args;
  const shipped = shippedWebgpuKernelFunc(tf.AddN);
  const group = addNGroupSize(backend);
  // AddN's inputs arrive as an array (the shipped kernel reads them as one).
  const sum = (terms: tf.TensorInfo[]): tf.TensorInfo => {
    if (terms.length <= group) return shipped({ inputs: terms as unknown as tf.NamedTensorInfoMap, backend, attrs: {} }) as tf.TensorInfo;
    const partials: tf.TensorInfo[] = [];
    for (let i = 0; i < terms.length; i += group) {
      const part = terms.slice(i, i + group);
      partials.push(part.length === 1 ? part[0] : (shipped({ inputs: part as unknown as tf.NamedTensorInfoMap, backend, attrs: {} }) as tf.TensorInfo));
    }
    const out = sum(partials);
    for (const p of partials) if (!terms.includes(p)) backend.disposeData(p.dataId);
    return out;
  };
  return sum(Object.values(args.inputs) as tf.TensorInfo[]);
}

export const addNConfig: tf.KernelConfig = {
  kernelName: tf.AddN,
  backendName: 'webgpu',
  kernelFunc: addN as unknown as tf.KernelFunc,
};
