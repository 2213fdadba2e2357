import * as tf from '@tensorflow/tfjs';

/**
 * Inference-mode BatchNormalization, optionally followed by ReLU, as one kernel forward and one
 * backward, for the input-only gradient path (input-gradient.ts) on backends that register the
 * kernels (webgpu). With a = γ/√(σ²_running + ε) per channel:
 *   y  = act((x − μ_running)·a + β),          act = ReLU or identity
 *   dx = dy·a·[y > 0]  (ReLU)  or  dy·a.
 * Composed from tfjs ops the pair takes eight GPU programs per layer (FusedBatchNorm, Relu, and for
 * the gradient Step, two full-size and three [C]-sized ones); this takes two. Only the gradient with
 * respect to x is given: γ, β and the running statistics are constants of the path.
 *
 * A residual block's tail, ReLU(BN(x) + r), runs the same way with r added before the activation:
 *   y = ReLU((x − μ_running)·a + β + r),   dr = dy·[y > 0],   dx = dr·a
 * in one program forward and two backward, where BN, Add, ReLU and their gradients took six.
 */

/** inputs {x, mean, variance, offset, scale} ([C] each but x) and optionally residual (like x), attrs {epsilon, relu}; output like x. */
export const BATCH_NORM_INFERENCE_KERNEL = 'CondenseBatchNormInference';
/** inputs {dy, y, variance, scale}, attrs {epsilon, relu}; output dx like dy. */
export const BATCH_NORM_INFERENCE_GRAD_KERNEL = 'CondenseBatchNormInferenceGrad';
/** inputs {dy, y}: dy·[y > 0], the gradient of a ReLU from its output. */
export const RELU_OUTPUT_GRAD_KERNEL = 'CondenseReluOutputGrad';

export const BATCH_NORM_INFERENCE_KERNELS = [BATCH_NORM_INFERENCE_KERNEL, BATCH_NORM_INFERENCE_GRAD_KERNEL, RELU_OUTPUT_GRAD_KERNEL] as const;

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

/** Whether the current backend has all three kernels. */
export function batchNormInferenceKernelsRegistered(backendName: string = tf.getBackend()): boolean {
  return BATCH_NORM_INFERENCE_KERNELS.every((name) => tf.getKernel(name, backendName) !== undefined);
}

/**
 * act(BatchNorm(x)) in inference mode through the backend's kernels, differentiable with respect to x
 * only. `x` is [..., C], float32; call only where batchNormInferenceKernelsRegistered().
 */
export function batchNormInference(x: tf.Tensor, bn: BatchNormConstants, relu: boolean): tf.Tensor {
  const attrs: BatchNormInferenceAttrs = { epsilon: bn.epsilon, relu };
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const y = runForward(input, bn, attrs);
    save([y]);
    return { value: y, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => runGrad(dy, saved[0], bn, attrs) };
  });
  return op(x);
}

/**
 * ReLU(BatchNorm(x) + residual) in inference mode through the backend's kernels, differentiable with
 * respect to x and residual. Both are [..., C] of one shape, float32; call only where
 * batchNormInferenceKernelsRegistered().
 */
export function batchNormAddRelu(x: tf.Tensor, residual: tf.Tensor, bn: BatchNormConstants): tf.Tensor {
  if (x.shape.join() !== residual.shape.join()) {
    throw new Error(`batchNormAddRelu: x has shape ${JSON.stringify(x.shape)}, the residual ${JSON.stringify(residual.shape)}`);
  }
  const attrs: BatchNormInferenceAttrs = { epsilon: bn.epsilon, relu: true };
  const engine = tf.engine();
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, r] = args as [tf.Tensor, tf.Tensor];
    const save = args[2] as tf.GradSaveFunc;
    const y = runForward(input, bn, attrs, r);
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dr = engine.runKernel(RELU_OUTPUT_GRAD_KERNEL, { dy, y: saved[0] }) as tf.Tensor;
        return [runGrad(dr, saved[0], bn, { ...attrs, relu: false }), dr];
      },
    };
  });
  return op(x, residual);
}

function runForward(x: tf.Tensor, bn: BatchNormConstants, attrs: BatchNormInferenceAttrs, residual?: tf.Tensor): tf.Tensor {
  const inputs: tf.NamedTensorMap = { x, mean: bn.movingMean, variance: bn.movingVariance, offset: bn.beta, scale: bn.gamma };
  if (residual !== undefined) inputs.residual = residual;
  return tf.engine().runKernel(BATCH_NORM_INFERENCE_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

function runGrad(dy: tf.Tensor, y: tf.Tensor, bn: BatchNormConstants, attrs: BatchNormInferenceAttrs): tf.Tensor {
  return tf.engine().runKernel(BATCH_NORM_INFERENCE_GRAD_KERNEL, { dy, y, variance: bn.movingVariance, scale: bn.gamma }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}
