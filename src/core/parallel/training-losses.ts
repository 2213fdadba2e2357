import type * as tf from '@tensorflow/tfjs';
import { crossEntropy } from '../training/trainer';

/**
 * Losses a data-parallel replica can train with, by name: a worker receives the name (data), never
 * a function. Each is the mean over the shard, so shard gradients average by shard size.
 */
export const TRAINING_LOSSES = Object.freeze({
  'cross-entropy': crossEntropy,
} satisfies Record<string, (logits: tf.Tensor2D, labels: tf.Tensor1D) => tf.Scalar>);

export type TrainingLossName = keyof typeof TRAINING_LOSSES;

export class UnknownTrainingLossError extends Error {
  constructor(name: string) {
    super(`unknown training loss "${name}"; use one of ${Object.keys(TRAINING_LOSSES).join(', ')}`);
    this.name = 'UnknownTrainingLossError';
  }
}

export function trainingLoss(name: string): (logits: tf.Tensor2D, labels: tf.Tensor1D) => tf.Scalar {
  if (!Object.hasOwn(TRAINING_LOSSES, name)) throw new UnknownTrainingLossError(name);
  return TRAINING_LOSSES[name as TrainingLossName];
}
