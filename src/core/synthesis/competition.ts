import * as tf from '@tensorflow/tfjs';

/** Probabilities are clamped to this range before the logs, as in the reference code. */
const PROBABILITY_FLOOR = 0.01;
const PROBABILITY_CEILING = 0.99;

/**
 * Adaptive DeepInversion's competition term, exactly as the reference code (the same in its CIFAR and
 * ImageNet files):
 *   P = softmax(student/T), Q = softmax(teacher/T), M = (P + Q)/2, all three clamped to [0.01, 0.99],
 *   JS = ½·KL(M‖P) + ½·KL(M‖Q)  (KL summed over classes, mean over the batch: KLDivLoss 'batchmean'),
 *   loss = 1 − clamp(JS, 0, 1).
 * Minimising it maximises the teacher/student disagreement, so the images move to where the student
 * is still wrong. Gradients flow into both logits (both come from the same images).
 */
export function jsCompetitionLoss(teacherLogits: tf.Tensor2D, studentLogits: tf.Tensor2D, temperature = 3): tf.Scalar {
  if (!(temperature > 0)) throw new RangeError(`temperature must be > 0; got ${temperature}`);
  if (teacherLogits.shape.join() !== studentLogits.shape.join()) {
    throw new RangeError(`teacher logits ${JSON.stringify(teacherLogits.shape)} and student logits ${JSON.stringify(studentLogits.shape)} differ in shape`);
  }
  return tf.tidy(() => {
    const clamp = (t: tf.Tensor) => tf.clipByValue(t, PROBABILITY_FLOOR, PROBABILITY_CEILING);
    const pRaw = tf.softmax(tf.div(studentLogits, temperature));
    const qRaw = tf.softmax(tf.div(teacherLogits, temperature));
    const m = clamp(tf.mul(tf.add(pRaw, qRaw), 0.5));
    const p = clamp(pRaw);
    const q = clamp(qRaw);
    const batch = teacherLogits.shape[0];
    const logM = tf.log(m);
    const klMP = tf.div(tf.sum(tf.mul(m, tf.sub(logM, tf.log(p)))), batch);
    const klMQ = tf.div(tf.sum(tf.mul(m, tf.sub(logM, tf.log(q)))), batch);
    const js = tf.mul(tf.add(klMP, klMQ), 0.5);
    return tf.sub(1, tf.clipByValue(js, 0, 1)) as tf.Scalar;
  });
}
