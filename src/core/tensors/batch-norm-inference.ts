import * as tf from '@tensorflow/tfjs';

/**
 * Inference-mode BatchNormalization, optionally followed by ReLU, as one kernel forward and one
 * backward, for the input-only gradient path (input-gradient.ts) on backends that register both
 * kernels (webgpu). With a = γ/√(σ²_running + ε) per channel:
 *   y  = act((x − μ_running)·a + β),          act = ReLU or identity
 *   dx = dy·a·[y > 0]  (ReLU)  or  dy·a.
 * Composed from tfjs ops the pair takes eight GPU programs per layer (FusedBatchNorm, Relu, and for
 * the gradient Step, two full-size and three [C]-sized ones); this takes two. Only the gradient with
 * respect to x is given: γ, β and the running statistics are constants of the path.
 */

/** inputs {x, mean, variance, offset, scale} ([C] each but x), attrs {epsilon, relu}; output like x. */
export const BATCH_NORM_INFERENCE_KERNEL = 'CondenseBatchNormInference';
/** inputs {dy, y, variance, scale}, attrs {epsilon, relu}; output dx like dy. */
export const BATCH_NORM_INFERENCE_GRAD_KERNEL = 'CondenseBatchNormInferenceGrad';

export const BATCH_NORM_INFERENCE_KERNELS = [BATCH_NORM_INFERENCE_KERNEL, BATCH_NORM_INFERENCE_GRAD_KERNEL] as const;

export interface BatchNormInferenceAttrs {
  epsilon: number;
  relu: boolean;
}

/** A BatchNormalization layer's constants in inference mode. */
export interface BatchNormConstants {
  movingMean: tf.Tensor1D;
  movingVariance: tf.Tensor1D;
  beta: tf.Tensor1D;
  gamma: tf.Tensor1D;
  epsilon: number;
}

/** Whether the current backend has both kernels. */
export function batchNormInferenceKernelsRegistered(backendName: string = tf.getBackend()): boolean {
  return BATCH_NORM_INFERENCE_KERNELS.every((name) => tf.getKernel(name, backendName) !== undefined);
}

/**
 * act(BatchNorm(x)) in inference mode through the backend's kernels, differentiable with respect to x
 * only. `x` is [..., C], float32; call only where batchNormInferenceKernelsRegistered().
 */
export function batchNormInference(x: tf.Tensor, bn: BatchNormConstants, relu: boolean): tf.Tensor {
  const attrs: BatchNormInferenceAttrs = { epsilon: bn.epsilon, relu };
  const engine = tf.engine();
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const y = engine.runKernel(
      BATCH_NORM_INFERENCE_KERNEL,
      { x: input, mean: bn.movingMean, variance: bn.movingVariance, offset: bn.beta, scale: bn.gamma },
      attrs as unknown as tf.NamedAttrMap,
    ) as tf.Tensor;
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        engine.runKernel(
          BATCH_NORM_INFERENCE_GRAD_KERNEL,
          { dy, y: saved[0], variance: bn.movingVariance, scale: bn.gamma },
          attrs as unknown as tf.NamedAttrMap,
        ) as tf.Tensor,
    };
  });
  return op(x);
}
