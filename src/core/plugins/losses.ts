import * as tf from '@tensorflow/tfjs';

/**
 * Losses shared by several plugins, as pure functions of tensors. Each returns a scalar averaged over
 * the batch; callers run them inside tf.tidy or a gradient function.
 */

/** Labels as class indices [batch] (int32) or as one-hot / probability rows [batch, classes]. */
function labelDistribution(labels: tf.Tensor, numClasses: number): tf.Tensor2D {
  if (labels.rank === 1) return tf.oneHot(labels.toInt() as tf.Tensor1D, numClasses).toFloat() as tf.Tensor2D;
  if (labels.rank === 2 && labels.shape[1] === numClasses) return labels.toFloat() as tf.Tensor2D;
  throw new Error(`labels must be [batch] class indices or [batch, ${numClasses}] rows; got shape ${JSON.stringify(labels.shape)}`);
}

/** Mean over the batch of −Σ y·log softmax(logits). */
export function softCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const y = labelDistribution(labels, logits.shape[1]);
    return tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  });
}

/**
 * Mean over the batch of KL(softmax(teacher/T) ‖ softmax(student/T)) — the teacher's distribution is
 * the target. Computed with log-softmax so that tiny probabilities do not produce log(0).
 */
export function softenedKlDivergence(studentLogits: tf.Tensor2D, teacherLogits: tf.Tensor2D, temperature: number): tf.Scalar {
  return tf.tidy(() => {
    const logPt = tf.logSoftmax(tf.div(teacherLogits, temperature));
    const logPs = tf.logSoftmax(tf.div(studentLogits, temperature));
    return tf.mean(tf.sum(tf.mul(tf.exp(logPt), tf.sub(logPt, logPs)), 1)) as tf.Scalar;
  });
}

/**
 * Hinton et al.'s distillation loss:
 *   alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(s, y).
 * The T² keeps the soft term's gradient (which scales as 1/T) comparable across temperatures; its
 * gradient with respect to the student logits is
 *   (alpha · T · (softmax(s/T) − softmax(t/T)) + (1 − alpha) · (softmax(s) − y)) / batch.
 * With alpha = 1 the labels are not used (they may be the teacher's own argmax on synthetic data).
 */
export function kdLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  labels: tf.Tensor,
  temperature: number,
  alpha: number,
): tf.Scalar {
  if (!(temperature > 0)) throw new RangeError(`temperature must be > 0; got ${temperature}`);
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`alpha must be in [0, 1]; got ${alpha}`);
  return tf.tidy(() => {
    const soft = tf.mul(softenedKlDivergence(studentLogits, teacherLogits, temperature), alpha * temperature * temperature);
    if (alpha === 1) return soft as tf.Scalar;
    return tf.add(soft, tf.mul(softCrossEntropy(studentLogits, labels), 1 - alpha)) as tf.Scalar;
  });
}
