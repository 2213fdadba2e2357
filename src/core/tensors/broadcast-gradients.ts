import * as tf from '@tensorflow/tfjs';
import type { Logger } from '../logging/logger';

/**
 * Gradients of FusedBatchNorm, Mean and Sum that broadcast instead of materialising full-size
 * helpers. tfjs-core 4.22's versions tile rsqrt(variance) to the whole input (FusedBatchNorm: a
 * `Tile` that was 20–34% of a wasm training step) and build a tensor of ones in JavaScript and
 * upload it (Mean, Sum; about 1 s of a webgpu step). Same mathematics; results differ from the
 * originals only by float rounding order. Registered for every backend at start-up.
 */

/** The tfjs-core version whose gradients these replace; see `registerBroadcastGradients`. */
export const BROADCAST_GRADIENTS_TFJS_VERSION = '4.22.0';

/** Axes of `full` that `reduced` was broadcast along (reduced has the same rank or is rank 1 over the last axis). */
function broadcastAxes(reducedShape: number[], fullShape: number[]): number[] {
  return tf.backend_util.getReductionAxes(reducedShape, fullShape);
}

function sumTo(t: tf.Tensor, shape: number[], fullShape: number[]): tf.Tensor {
  const axes = broadcastAxes(shape, fullShape);
  return tf.reshape(axes.length > 0 ? tf.sum(t, axes) : t, shape);
}

/** dy broadcast back to `shape` over `axes`, times `factor`, without a Tile: a multiply by a filled tensor. */
function broadcastBack(dy: tf.Tensor, shape: number[], axes: number[], factor: number | undefined): tf.Tensor {
  const expanded = shape.slice();
  for (const axis of axes) expanded[axis] = 1;
  let small = tf.reshape(dy, expanded);
  if (factor !== undefined) small = tf.div(small, factor);
  return tf.mul(small, tf.fill(shape, 1, 'float32'));
}

export const fusedBatchNormGradConfig: tf.GradConfig = {
  kernelName: tf.FusedBatchNorm,
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dy, saved, attrs) => {
    const dyT = dy as tf.Tensor;
    const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
    const [x, mean, variance, scale] = saved;
    const scaleValue = scale == null ? tf.scalar(1) : scale;
    const rsqrtVariance = tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon)));
    // Σ over the broadcast axes of (x − mean)·dy: shared by the variance and scale gradients.
    const centredDotDy = () => sumTo(tf.mul(tf.sub(x, mean), dyT), mean.shape, x.shape);
    return {
      x: () => tf.reshape(tf.mul(dyT, tf.mul(rsqrtVariance, scaleValue)), x.shape),
      mean: () => tf.reshape(tf.mul(tf.neg(tf.mul(rsqrtVariance, scaleValue)), sumTo(dyT, mean.shape, x.shape)), mean.shape),
      variance: () => {
        const minusHalfRCube = tf.mul(tf.mul(tf.mul(rsqrtVariance, rsqrtVariance), rsqrtVariance), tf.scalar(-0.5));
        return tf.reshape(tf.mul(tf.mul(minusHalfRCube, scaleValue), centredDotDy()), mean.shape);
      },
      scale: () => tf.reshape(tf.mul(rsqrtVariance, centredDotDy()), mean.shape),
      offset: () => sumTo(dyT, mean.shape, x.shape),
    };
  },
};

export const meanGradConfig: tf.GradConfig = {
  kernelName: tf.Mean,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved;
    const axes = tf.util.parseAxisParam((attrs as unknown as { axis: number | number[] }).axis, x.shape);
    const reduceSize = axes.reduce((n, axis) => n * x.shape[axis], 1);
    return { x: () => broadcastBack(dy as tf.Tensor, x.shape, axes, reduceSize) };
  },
};

export const sumGradConfig: tf.GradConfig = {
  kernelName: tf.Sum,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved;
    const axes = tf.util.parseAxisParam((attrs as unknown as { axis: number | number[] }).axis, x.shape);
    return { x: () => broadcastBack(dy as tf.Tensor, x.shape, axes, undefined) };
  },
};

export const BROADCAST_GRADIENTS: readonly tf.GradConfig[] = [fusedBatchNormGradConfig, meanGradConfig, sumGradConfig];

let registered = false;
const originals = new Map<string, tf.GradConfig>();

/** tfjs-core's own gradient that `registerBroadcastGradients` replaced (for tests and comparisons). */
export function originalGradient(kernelName: string): tf.GradConfig | undefined {
  return originals.get(kernelName);
}

/**
 * Replaces tfjs-core's gradients of FusedBatchNorm, Mean and Sum (for every backend). Idempotent.
 * On another tfjs version they are still registered (the gradient API is stable) with a warning:
 * run test/tensors to check them.
 */
export function registerBroadcastGradients(log?: Logger): void {
  if (registered) return;
  if (tf.version_core !== BROADCAST_GRADIENTS_TFJS_VERSION) {
    log?.warn({ expected: BROADCAST_GRADIENTS_TFJS_VERSION, core: tf.version_core }, 'broadcast gradients were written for another tfjs version; run test/tensors');
  }
  for (const config of BROADCAST_GRADIENTS) {
    const original = tf.getGradient(config.kernelName);
    if (original !== undefined) originals.set(config.kernelName, original);
    tf.registerGradient(config);
  }
  registered = true;
}
