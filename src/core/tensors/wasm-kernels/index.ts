import * as tf from '@tensorflow/tfjs';
import type { Logger } from '../../logging/logger';
import { replaceKernel } from '../kernel-calls';
import { batchMatMulConfig } from './batch-mat-mul';
import { addChannelConfig, channelAffineConfig, fusedBatchNormChannelConfig, multiplyChannelConfig, subChannelConfig } from './channel-broadcast';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter';
import { conv2DBackpropInputConfig } from './conv2d-backprop-input';
import { depthwiseConv2dNativeBackpropFilterConfig } from './depthwise-conv2d-backprop-filter';
import { depthwiseConv2dNativeBackpropInputConfig } from './depthwise-conv2d-backprop-input';
import { maxPoolGradConfig } from './max-pool-grad';
import { concatConfig, padV2Config } from './pad-concat';
import { meanLeadingAxesConfig, sumLeadingAxesConfig } from './reduce-leading-axes';
import { resizeNearestNeighborGradConfig } from './resize-nearest-neighbor-grad';
import { rememberShippedKernel, shippedKernel } from './shipped';
import { sliceConfig, splitVConfig } from './slice';
import { castZeroCopyConfig, identityZeroCopyConfig } from './zero-copy';

/** The tfjs-core / tfjs-backend-wasm version these kernels were written and tested against. */
export const WASM_KERNELS_TFJS_VERSION = '4.22.0';

/** Kernels that training conv nets needs and tfjs-backend-wasm 4.22 lacks. */
export const WASM_TRAINING_KERNELS: readonly tf.KernelConfig[] = [
  conv2DBackpropFilterConfig,
  channelAffineConfig,
  depthwiseConv2dNativeBackpropFilterConfig,
  depthwiseConv2dNativeBackpropInputConfig,
];

/**
 * Faster exact replacements of kernels tfjs-backend-wasm 4.22 ships (its Conv2DBackpropInput is a
 * plain loop ~10× slower than XNNPACK's forward conv; its MaxPoolGrad, Sum/Mean over leading axes and
 * copying Identity/Cast, BatchMatMul on transposed operands, non-contiguous Slice, SplitV, PadV2,
 * Concat of short blocks, ResizeNearestNeighborGrad, FusedBatchNorm and Multiply/Add/Sub by a channel
 * vector are slow too). Replaced only
 * on the version they were written for: on another, the shipped kernel stays.
 */
export const WASM_REPLACEMENT_KERNELS: readonly tf.KernelConfig[] = [
  conv2DBackpropInputConfig,
  maxPoolGradConfig,
  sumLeadingAxesConfig,
  meanLeadingAxesConfig,
  identityZeroCopyConfig,
  castZeroCopyConfig,
  batchMatMulConfig,
  sliceConfig,
  splitVConfig,
  padV2Config,
  concatConfig,
  resizeNearestNeighborGradConfig,
  multiplyChannelConfig,
  addChannelConfig,
  subChannelConfig,
  fusedBatchNormChannelConfig,
];

export interface WasmKernelRegistration {
  /** Kernels of ours now registered (by this call or an earlier one). */
  registered: string[];
  /** Kernels left alone because the wasm backend already has them. */
  alreadyPresent: string[];
  /** Shipped kernels replaced by ours (by this call or an earlier one). */
  replaced: string[];
}

/** tfjs-backend-wasm's own kernel that ours replaced, for tests and comparisons. */
export function shippedWasmKernel(kernelName: string): tf.KernelConfig | undefined {
  return shippedKernel(kernelName);
}

/**
 * Registers the missing training kernels for 'wasm' and replaces the slow shipped ones. Idempotent;
 * never replaces a kernel the backend ships except those in WASM_REPLACEMENT_KERNELS, and those only
 * on tfjs 4.22.0. On another version the missing ones are still registered (the kernel API is stable)
 * but a warning says so: run test/tensors to check them.
 */
export function registerWasmTrainingKernels(wasmVersion: string, log?: Logger): WasmKernelRegistration {
  const versions = { core: tf.version_core, wasm: wasmVersion };
  const versionMatches = versions.core === WASM_KERNELS_TFJS_VERSION && versions.wasm === WASM_KERNELS_TFJS_VERSION;
  if (!versionMatches) {
    log?.warn(
      { expected: WASM_KERNELS_TFJS_VERSION, ...versions },
      'wasm training kernels were written for another tfjs version; the shipped kernels are not replaced; run the test/tensors suite to check the added ones',
    );
  }
  const result: WasmKernelRegistration = { registered: [], alreadyPresent: [], replaced: [] };
  for (const config of WASM_TRAINING_KERNELS) {
    const existing = tf.getKernel(config.kernelName, 'wasm');
    if (existing !== undefined && existing !== config) {
      result.alreadyPresent.push(config.kernelName);
      continue;
    }
    if (existing === undefined) tf.registerKernel(config);
    result.registered.push(config.kernelName);
  }
  if (versionMatches) {
    for (const config of WASM_REPLACEMENT_KERNELS) {
      const displaced = replaceKernel(config);
      if (displaced !== undefined) rememberShippedKernel(displaced);
      result.replaced.push(config.kernelName);
    }
  }
  return result;
}
