import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { runKernelOn } from '../kernel-calls';

/** `t` reshaped (webgpu's Reshape shares the data), with the intermediate `t` released. */
export function reshapeReleasing(backend: WebGPUBackend, t: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  const out = runKernelOn('webgpu', backend, tf.Reshape, { x: t }, { shape });
  backend.disposeData(t.dataId);
  return out;
}
