import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { Logger } from '../../logging/logger';
import { replaceKernel } from '../kernel-calls';
import { addNConfig } from './add-n';
import { BATCH_NORM_INFERENCE_WEBGPU_KERNELS } from './batch-norm-inference';
import { BN_STATISTICS_WEBGPU_KERNELS } from './bn-statistics';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter';
import { conv2DBackpropInputConfig } from './conv2d-gemm';
import { meanConfig, sumConfig } from './reduce-leading-axes';
import { rememberShippedWebgpuKernel, shippedWebgpuKernel, shippedWebgpuKernels } from './shipped';
import { useQueueWriteUploads, useShippedUploads } from './upload';

export { useQueueWriteUploads, useShippedUploads };

/** The tfjs-core / tfjs-backend-webgpu version these kernels were written and tested against. */
export const WEBGPU_KERNELS_TFJS_VERSION = '4.22.0';

/**
 * Replacements of kernels tfjs-backend-webgpu 4.22 ships: faster conv filter and input gradients and
 * Sum/Mean over leading axes (same results up to float rounding order), and an AddN that stays within
 * the device's storage-buffer limit.
 */
export const WEBGPU_REPLACEMENT_KERNELS: readonly tf.KernelConfig[] = [conv2DBackpropFilterConfig, conv2DBackpropInputConfig, sumConfig, meanConfig, addNConfig];

/**
 * Kernels tfjs has no counterpart of: the feature-statistics loss (bn-statistics-kernels.ts) and
 * inference BatchNorm (+ ReLU) with its input gradient (batch-norm-inference.ts).
 */
export const WEBGPU_ADDED_KERNELS: readonly tf.KernelConfig[] = [...BN_STATISTICS_WEBGPU_KERNELS, ...BATCH_NORM_INFERENCE_WEBGPU_KERNELS];

export { shippedWebgpuKernel };

export interface WebgpuKernelRegistration {
  /** Shipped kernels replaced by ours (by this call or an earlier one). */
  replaced: string[];
  /** Kernels of Condense's own registered (WEBGPU_ADDED_KERNELS). */
  added: string[];
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
    return { replaced: [], added: [], queueWriteUploads: false };
  }
  const replaced: string[] = [];
  for (const config of WEBGPU_REPLACEMENT_KERNELS) {
    const displaced = replaceKernel(config);
    if (displaced !== undefined) rememberShippedWebgpuKernel(displaced);
    replaced.push(config.kernelName);
  }
  for (const config of WEBGPU_ADDED_KERNELS) replaceKernel(config);
  useQueueWriteUploads(backend);
  return { replaced, added: WEBGPU_ADDED_KERNELS.map((c) => c.kernelName), queueWriteUploads: true };
}

/**
 * Puts the named shipped kernels back and unregisters the named added ones, whose callers then
 * compose the same result from tfjs ops (benchmarks compare both; AddN's replacement is a
 * correctness fix, not a speed-up); see useShippedUploads for uploads.
 */
export function restoreShippedWebgpuKernels(names: readonly string[]): void {
  for (const config of shippedWebgpuKernels()) {
    if (names.includes(config.kernelName)) replaceKernel(config);
  }
  for (const config of WEBGPU_ADDED_KERNELS) {
    if (names.includes(config.kernelName) && tf.getKernel(config.kernelName, config.backendName) !== undefined) {
      tf.unregisterKernel(config.kernelName, config.backendName);
    }
  }
}

/**
 * Registers a candidate kernel (one being measured, not in WEBGPU_REPLACEMENT_KERNELS), keeping the
 * shipped kernel it displaces for its fallbacks and for restoreShippedWebgpuKernels.
 */
export function useCandidateWebgpuKernel(config: tf.KernelConfig): void {
  const displaced = replaceKernel(config);
  if (displaced !== undefined && shippedWebgpuKernel(config.kernelName) === undefined) rememberShippedWebgpuKernel(displaced);
}

/** Registers ours again after restoreShippedWebgpuKernels. */
export function useCondenseWebgpuKernels(names: readonly string[]): void {
  for (const config of [...WEBGPU_REPLACEMENT_KERNELS, ...WEBGPU_ADDED_KERNELS]) {
    if (names.includes(config.kernelName)) replaceKernel(config);
  }
}

const validationErrors: string[] = [];

/**
 * Records the device's uncaptured errors (an invalid pipeline drops its whole command buffer, and
 * Dawn only prints a message): `webgpuErrorCount` lets loops fail instead of going on with wrong
 * numbers.
 */
export function watchWebgpuErrors(backend: WebGPUBackend, log?: Logger): void {
  const device = (backend as unknown as { device: { onuncapturederror: unknown } }).device;
  device.onuncapturederror = (event: { error?: { message?: string } }) => {
    const message = event.error?.message ?? String(event);
    validationErrors.push(message);
    log?.error({ error: message.split('\n')[0] }, 'webgpu device error');
  };
}

/** Uncaptured webgpu device errors seen so far in this process. */
export function webgpuErrorCount(): number {
  return validationErrors.length;
}

/** The first line of each recorded device error. */
export function webgpuErrors(): string[] {
  return validationErrors.map((m) => m.split('\n')[0]);
}
