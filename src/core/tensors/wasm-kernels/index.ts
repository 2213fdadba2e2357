import * as tf from '@tensorflow/tfjs';
import type { Logger } from '../../logging/logger';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter';
import { depthwiseConv2dNativeBackpropFilterConfig } from './depthwise-conv2d-backprop-filter';
import { depthwiseConv2dNativeBackpropInputConfig } from './depthwise-conv2d-backprop-input';

/** The tfjs-core / tfjs-backend-wasm version these kernels were written and tested against. */
export const WASM_KERNELS_TFJS_VERSION = '4.22.0';

/** Kernels that training conv nets needs and tfjs-backend-wasm 4.22 lacks. */
export const WASM_TRAINING_KERNELS: readonly tf.KernelConfig[] = [
  conv2DBackpropFilterConfig,
  depthwiseConv2dNativeBackpropFilterConfig,
  depthwiseConv2dNativeBackpropInputConfig,
];

export interface WasmKernelRegistration {
  /** Kernels of ours now registered (by this call or an earlier one). */
  registered: string[];
  /** Kernels left alone because the wasm backend already has them. */
  alreadyPresent: string[];
}

/**
 * Registers the missing training kernels for 'wasm'. Idempotent; never replaces a kernel the backend
 * ships. On a tfjs version other than the one they were written for, they are still registered (the
 * kernel API is stable) but a warning says so: run test/tensors to check them.
 */
export function registerWasmTrainingKernels(wasmVersion: string, log?: Logger): WasmKernelRegistration {
  const versions = { core: tf.version_core, wasm: wasmVersion };
  if (versions.core !== WASM_KERNELS_TFJS_VERSION || versions.wasm !== WASM_KERNELS_TFJS_VERSION) {
    log?.warn(
      { expected: WASM_KERNELS_TFJS_VERSION, ...versions },
      'wasm training kernels were written for another tfjs version; run the test/tensors suite to check them',
    );
  }
  const result: WasmKernelRegistration = { registered: [], alreadyPresent: [] };
  for (const config of WASM_TRAINING_KERNELS) {
    const existing = tf.getKernel(config.kernelName, 'wasm');
    if (existing !== undefined && existing !== config) {
      result.alreadyPresent.push(config.kernelName);
      continue;
    }
    if (existing === undefined) tf.registerKernel(config);
    result.registered.push(config.kernelName);
  }
  return result;
}
