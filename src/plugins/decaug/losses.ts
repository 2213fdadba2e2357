import * as tf from '@tensorflow/tfjs';

/**
 * DecAug's losses as pure functions of tensors. All cross-entropies take LOGITS (softmax applied
 * once, inside the loss); the reference code applied softmax in the model and again in
 * F.cross_entropy, which this does not repeat.
 */

/**
 * Per-example gradient of the softmax cross-entropy −log softmax(z)[label] with respect to the
 * input h of a chain of linear (dense) layers ending in the logits z:
 *   z = (…(h·K₁ + b₁)·K₂ …)·Kₙ + bₙ  ⇒  ∂L/∂h = (softmax(z) − onehot(label)) · Kₙᵀ · … · K₁ᵀ.
 * `kernels` are tf.layers dense kernels [in, out] in forward order (K₁ first). Returns [batch, in₁].
 * Differentiable in the logits and the kernels (its own gradient flows through both); with
 * `holdProbabilities` the softmax is held constant (the reference's `logits.detach()`), so only the
 * kernels receive its gradient.
 */
export function crossEntropyInputGradient(logits: tf.Tensor2D, labels: tf.Tensor1D, kernels: tf.Tensor2D[], holdProbabilities = false): tf.Tensor2D {
  return tf.tidy(() => {
    const probabilities = holdProbabilities ? stopGradient(tf.softmax(logits)) : tf.softmax(logits);
    let g = tf.sub(probabilities, tf.oneHot(tf.cast(labels, 'int32'), logits.shape[1])) as tf.Tensor2D;
    for (let i = kernels.length - 1; i >= 0; i--) g = tf.matMul(g, kernels[i], false, true);
    return g;
  });
}

/** Each row divided by (its L2 norm + epsilon). */
export function normalizeRows(x: tf.Tensor2D, epsilon: number): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.add(tf.sqrt(tf.sum(tf.square(x), 1, true)), epsilon)) as tf.Tensor2D);
}

/**
 * Orthogonality of two per-example gradients [batch, d]: Σ_batch cos²(a_b, b_b), with each row
 * normalised as a/(‖a‖+ε). Summed over the batch, as the reference does, so the default weight 0.01
 * means what it means there at batch 64.
 */
export function gradientOrthogonality(a: tf.Tensor2D, b: tf.Tensor2D, epsilon: number): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.square(tf.sum(tf.mul(normalizeRows(a, epsilon), normalizeRows(b, epsilon)), 1))) as tf.Scalar);
}

/** The identity whose gradient is zero (tf.stop_gradient; TF.js has no such op). */
export const stopGradient = tf.customGrad(((x: tf.Tensor) => ({
  value: tf.clone(x),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;

/**
 * DecAug's semantic augmentation of the context feature: the feature moved by `scale` along the
 * per-example normalised gradient of the context cross-entropy with respect to it (the direction that
 * raises the context loss), the direction held constant (no gradient through it).
 * `contextKernel` is the context classifier's kernel [contextFeatures, contexts].
 */
export function augmentContextFeature(
  contextFeature: tf.Tensor2D,
  contextLogits: tf.Tensor2D,
  contexts: tf.Tensor1D,
  contextKernel: tf.Tensor2D,
  scale: number,
  epsilon: number,
): tf.Tensor2D {
  return tf.tidy(() => {
    const direction = stopGradient(normalizeRows(crossEntropyInputGradient(contextLogits, contexts, [contextKernel]), epsilon));
    return tf.add(contextFeature, tf.mul(direction, scale)) as tf.Tensor2D;
  });
}
