import * as tf from '@tensorflow/tfjs';
import { bnStatisticsLoss, tapBatchNormInputs } from '../tensors/bn-taps';
import { createOptimizer } from '../training/optimizers';
import { crossEntropy } from '../training/trainer';

/** Settings of one DeepInversion batch: plain data, so it can travel to a worker. */
export interface InversionBatchConfig {
  /** Input-gradient steps on the batch. */
  iterations: number;
  /** Adam learning rate on the pixels. */
  learningRate: number;
  /** Weight of the BatchNorm-statistics loss next to the cross-entropy to the targets. */
  bnWeight: number;
  /** Adam moment decay rates; default 0.9 and 0.999 (as DeepInversion's reference code). */
  beta1?: number;
  beta2?: number;
}

export interface InversionBatchResult {
  /** The synthesized images, [count, ...shape] flattened (NHWC). */
  images: Float32Array;
  shape: [number, number, number, number];
  /** Total loss (CE + bnWeight · BN statistics) at the start of each iteration. */
  losses: Float32Array;
}

/** A synthesis batch whose settings or targets cannot be used. */
export class InversionJobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InversionJobError';
  }
}

function checkConfig(config: InversionBatchConfig, targets: Int32Array, numClasses: number): void {
  if (!(Number.isInteger(config.iterations) && config.iterations > 0)) throw new InversionJobError(`iterations must be a positive integer; got ${config.iterations}`);
  if (!(Number.isFinite(config.learningRate) && config.learningRate > 0)) throw new InversionJobError(`learningRate must be a positive number; got ${config.learningRate}`);
  if (!(Number.isFinite(config.bnWeight) && config.bnWeight >= 0)) throw new InversionJobError(`bnWeight must be a number ≥ 0; got ${config.bnWeight}`);
  if (targets.length === 0) throw new InversionJobError('a synthesis batch needs at least one target class');
  for (const t of targets) {
    if (!(Number.isInteger(t) && t >= 0 && t < numClasses)) throw new InversionJobError(`target class ${t} is outside 0..${numClasses - 1}`);
  }
}

/**
 * DeepInversion's inner loop on one batch: pixels start as N(0, 1) noise from `seed` and follow Adam
 * on CE(teacher(x), targets) + bnWeight · Σ‖μ − μ_running‖ + ‖σ² − σ²_running‖ with the teacher in
 * inference mode. The image priors (TV, l2, jitter, flip) of the full method are not part of this
 * loop yet. Deterministic for a given teacher, targets, seed and backend.
 */
export async function invertBatch(teacher: tf.LayersModel, targets: Int32Array, seed: number, config: InversionBatchConfig): Promise<InversionBatchResult> {
  const inputShape = teacher.inputs[0].shape.slice(1);
  const classes = teacher.outputs[0].shape[1];
  if (inputShape.length !== 3 || inputShape.some((d) => d == null) || classes == null) {
    throw new InversionJobError(`teacher ${teacher.name} must map images [batch, h, w, c] to logits [batch, classes]`);
  }
  checkConfig(config, targets, classes);
  const shape = [targets.length, ...(inputShape as number[])] as [number, number, number, number];
  const forward = tapBatchNormInputs(teacher);
  const labels = tf.tensor1d(targets, 'int32');
  const images = tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, 1, 'float32', seed), true));
  const optimizer = createOptimizer([{ variable: images, decay: false }], { kind: 'adam', beta1: config.beta1, beta2: config.beta2 });
  const losses = new Float32Array(config.iterations);
  const lossOf = (x: tf.Tensor): tf.Scalar => {
    const { logits, taps } = forward(x, { training: false });
    return tf.add(crossEntropy(logits as tf.Tensor2D, labels), tf.mul(bnStatisticsLoss(taps), config.bnWeight));
  };
  try {
    for (let i = 0; i < config.iterations; i++) {
      const { value, grad } = tf.valueAndGrad(lossOf)(images);
      try {
        optimizer.step([grad], config.learningRate);
        losses[i] = (await value.data())[0];
      } finally {
        tf.dispose([value, grad]);
      }
      if (!Number.isFinite(losses[i])) throw new InversionJobError(`the synthesis loss became ${losses[i]} at iteration ${i + 1}; lower learningRate`);
    }
    return { images: (await images.data()) as Float32Array, shape, losses };
  } finally {
    optimizer.dispose();
    tf.dispose([images, labels]);
  }
}
