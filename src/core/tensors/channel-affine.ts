import * as tf from '@tensorflow/tfjs';
import { CHANNEL_AFFINE_KERNEL } from './wasm-kernels/channel-broadcast';

/**
 * x·w + b with w and b one value per channel of x's last axis ([C] tensors; b optional), for inputs
 * the caller knows to be finite. On wasm it is one XNNPACK depthwise 1×1 conv (a third of the time
 * of a broadcasting multiply, and one pass instead of two), whose output clamp would turn a NaN into
 * −∞, hence the precondition; elsewhere it is a multiply and an add. Not differentiable: for use
 * inside custom gradients and custom forward passes.
 */
export function channelAffineOfFinite(x: tf.Tensor, weights: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  if (tf.getBackend() === 'wasm' && x.dtype === 'float32' && x.rank >= 2 && tf.getKernel(CHANNEL_AFFINE_KERNEL, 'wasm') !== undefined) {
    const inputs: tf.NamedTensorMap = { x, weights };
    if (bias !== undefined) inputs.bias = bias;
    return tf.engine().runKernel(CHANNEL_AFFINE_KERNEL, inputs, {}) as tf.Tensor;
  }
  return tf.tidy(() => (bias === undefined ? tf.mul(x, weights) : tf.add(tf.mul(x, weights), bias)));
}

/** Whether every value of these small tensors is finite (reads them: for per-channel vectors). */
export function allFiniteValues(...tensors: tf.Tensor[]): boolean {
  return tensors.every((t) => (t.dataSync() as Float32Array).every(Number.isFinite));
}
