import * as tf from '@tensorflow/tfjs';

/**
 * IE-KD's losses as pure functions of tensors (factors are [batch, h, w, channels] or any
 * [batch, ...] shape; everything is flattened per example).
 */

export const FACTOR_DISTANCES = ['l1', 'l2', 'cosine'] as const;
export type FactorDistance = (typeof FACTOR_DISTANCES)[number];

/** Rows of [batch, ...] flattened to [batch, features], each divided by its L2 norm (floored at 1e-12, like F.normalize). */
export function l2NormalizeRows(x: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const flat = tf.reshape(x, [x.shape[0], -1]) as tf.Tensor2D;
    const norm = tf.sqrt(tf.sum(tf.square(flat), 1, true));
    return tf.div(flat, tf.maximum(norm, 1e-12)) as tf.Tensor2D;
  });
}

/**
 * Factor-transfer distance (Kim et al.'s FT, as IE-KD uses it): with x̂, ŷ the per-example
 * L2-normalised flattened factors and d = x̂ − ŷ over the whole batch,
 *   (Σ |d|^p / numel(d))^(1/p),  p = 1 or 2.
 */
export function factorTransferDistance(x: tf.Tensor, y: tf.Tensor, p: 1 | 2): tf.Scalar {
  if (p !== 1 && p !== 2) throw new RangeError(`p must be 1 or 2; got ${p}`);
  return tf.tidy(() => {
    const d = tf.sub(l2NormalizeRows(x), l2NormalizeRows(y));
    if (p === 1) return tf.mean(tf.abs(d)) as tf.Scalar;
    return tf.sqrt(tf.mean(tf.square(d))) as tf.Scalar;
  });
}

/** Cosine similarity of each example's flattened x and y: [batch]. */
export function rowCosine(x: tf.Tensor, y: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.mul(l2NormalizeRows(x), l2NormalizeRows(y)), 1) as tf.Tensor1D);
}

/** Mean over the batch of 1 − cos(x, y): 0 when the factors point the same way. */
export function cosineInheritLoss(x: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.sub(1, rowCosine(x, y))) as tf.Scalar);
}

/** Mean over the batch of |cos(x, y)|: 0 when the factors are orthogonal. */
export function cosineExploreLoss(x: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.abs(rowCosine(x, y))) as tf.Scalar);
}

/** Pulls the student's factor towards the teacher's: FT distance (l1/l2) or 1 − cos. */
export function inheritanceLoss(student: tf.Tensor, teacher: tf.Tensor, distance: FactorDistance): tf.Scalar {
  if (distance === 'cosine') return cosineInheritLoss(student, teacher);
  return factorTransferDistance(student, teacher, distance === 'l1' ? 1 : 2);
}

/** Pushes the student's factor away from the teacher's: −FT distance (l1/l2) or |cos|. */
export function explorationLoss(student: tf.Tensor, teacher: tf.Tensor, distance: FactorDistance): tf.Scalar {
  if (distance === 'cosine') return cosineExploreLoss(student, teacher);
  return tf.tidy(() => tf.neg(factorTransferDistance(student, teacher, distance === 'l1' ? 1 : 2)) as tf.Scalar);
}

/** Mean absolute error between a reconstruction and its target (the auto-encoder's L1 loss). */
export function reconstructionL1(reconstruction: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.abs(tf.sub(reconstruction, target))) as tf.Scalar);
}

export const FACTOR_SPLITS = ['natural', 'random'] as const;
export type FactorSplit = (typeof FACTOR_SPLITS)[number];

/** The two disjoint channel sets of a factor: `inherit` and `explore`, sorted ascending. */
export interface ChannelSplit {
  inherit: number[];
  explore: number[];
}

/**
 * Splits `channels` channels (IE-KD splits the student's feature channels) in two: 'natural' = first ⌈c/2⌉ channels inherit, the rest
 * explore; 'random' = a seeded random ⌈c/2⌉ channels inherit, the rest explore. `permutation`
 * (required for 'random') is a permutation of 0..channels-1.
 */
export function splitFactorChannels(channels: number, split: FactorSplit, permutation?: ArrayLike<number>): ChannelSplit {
  if (!(Number.isInteger(channels) && channels >= 2)) throw new RangeError(`a split needs at least 2 channels; got ${channels}`);
  const half = Math.ceil(channels / 2);
  let order: number[];
  if (split === 'natural') order = Array.from({ length: channels }, (_, i) => i);
  else {
    if (!permutation || permutation.length !== channels) throw new RangeError(`the random split needs a permutation of ${channels} channels`);
    order = Array.from(permutation);
  }
  const sort = (a: number[]) => a.sort((p, q) => p - q);
  return { inherit: sort(order.slice(0, half)), explore: sort(order.slice(half)) };
}

/**
 * The channels `indices` of a [..., c] factor, as a product with a 0/1 selection matrix (exact; the
 * wasm backend has no gradient kernel for gather).
 */
export function gatherChannels(factor: tf.Tensor, indices: number[]): tf.Tensor {
  return tf.tidy(() => {
    const c = factor.shape[factor.rank - 1];
    const select = new Float32Array(c * indices.length);
    indices.forEach((channel, j) => {
      if (!(Number.isInteger(channel) && channel >= 0 && channel < c)) throw new RangeError(`channel ${channel} outside 0..${c - 1}`);
      select[channel * indices.length + j] = 1;
    });
    const flat = tf.reshape(factor, [-1, c]);
    return tf.reshape(tf.matMul(flat, tf.tensor2d(select, [c, indices.length])), [...factor.shape.slice(0, -1), indices.length]);
  });
}
