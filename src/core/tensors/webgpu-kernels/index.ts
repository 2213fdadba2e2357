import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { Logger } from '../../logging/logger';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter';
import { useQueueWriteUploads, useShippedUploads } from './upload';

export { useQueueWriteUploads, useShippedUploads };

/** The tfjs-core / tfjs-backend-webgpu version these kernels were written and tested against. */
export const WEBGPU_KERNELS_TFJS_VERSION = '4.22.0';

/** Faster exact replacements of kernels tfjs-backend-webgpu 4.22 ships. */
export const WEBGPU_REPLACEMENT_KERNELS: readonly tf.KernelConfig[] = [conv2DBackpropFilterConfig];

const shipped = new Map<string, tf.KernelConfig>();

/** tfjs-backend-webgpu's own kernel that ours replaced, for tests and comparisons. */
export function shippedWebgpuKernel(kernelName: string): tf.KernelConfig | undefined {
  return shipped.get(kernelName);
}

export interface WebgpuKernelRegistration {
  /** Shipped kernels replaced by ours (by this call or an earlier one). */
  replaced: string[];
  /** Whether uploads go through queue.writeBuffer. */
  queueWriteUploads: boolean;
}

/**
 * Replaces the slow shipped webgpu kernels and the per-tensor staging-buffer upload, on tfjs 4.22.0
 * only (on another version everything shipped stays, with a warning). Idempotent. `backend` is the
 * started webgpu backend instance (`tf.findBackend('webgpu')`).
 */
export function registerWebgpuKernels(backend: WebGPUBackend, webgpuVersion: string, log?: Logger): WebgpuKernelRegistration {
  const versions = { core: tf.version_core, webgpu: webgpuVersion };
  if (versions.core !== WEBGPU_KERNELS_TFJS_VERSION || versions.webgpu !== WEBGPU_KERNELS_TFJS_VERSION) {
    log?.warn({ expected: WEBGPU_KERNELS_TFJS_VERSION, ...versions }, 'webgpu kernels were written for another tfjs version; the shipped kernels and uploads are kept');
    return { replaced: [], queueWriteUploads: false };
  }
  const replaced: string[] = [];
  for (const config of WEBGPU_REPLACEMENT_KERNELS) {
    const existing = tf.getKernel(config.kernelName, 'webgpu');
    if (existing !== config) {
      if (existing !== undefined) {
        shipped.set(config.kernelName, existing);
        tf.unregisterKernel(config.kernelName, 'webgpu');
      }
      tf.registerKernel(config);
    }
    replaced.push(config.kernelName);
  }
  useQueueWriteUploads(backend);
  return { replaced, queueWriteUploads: true };
}

/** Puts the shipped kernels back (benchmarks compare both); see useShippedUploads for uploads. */
export function restoreShippedWebgpuKernels(): void {
  for (const [name, config] of shipped) {
    tf.unregisterKernel(name, 'webgpu');
    tf.registerKernel(config);
  }
}

/** Registers ours again after restoreShippedWebgpuKernels. */
export function useCondenseWebgpuKernels(): void {
  for (const config of WEBGPU_REPLACEMENT_KERNELS) {
    if (tf.getKernel(config.kernelName, 'webgpu') === config) continue;
    tf.unregisterKernel(config.kernelName, 'webgpu');
    tf.registerKernel(config);
  }
}
