import * as tf from '@tensorflow/tfjs';
import type { SeededRandom } from '../random';

/**
 * Image priors of DeepInversion (and NaturalInversion) on NHWC batches, as pure functions of
 * tensors, and the random jitter/flip applied to the batch before the teacher sees it.
 */

/** Guards the norm's gradient x/‖x‖ where ‖x‖ = 0 (PyTorch's norm backward gives 0 there; tf's sqrt gives NaN). */
const NORM_FLOOR = 1e-12;

/**
 * Euclidean norm of `x` over `axes` (all axes when omitted) whose gradient is x/‖x‖, and 0 where the
 * norm is 0, instead of tf.norm's NaN: a flat image has zero total variation and must not poison Adam.
 */
export function l2Norm(x: tf.Tensor, axes?: number[]): tf.Tensor {
  const over = axes ?? Array.from({ length: x.rank }, (_, i) => i);
  const norm = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const value = tf.sqrt(tf.sum(tf.square(input), over, true));
    save([input, value]);
    return {
      value: tf.squeeze(value, over),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, n] = saved;
        const scale = tf.div(tf.reshape(dy, n.shape), tf.maximum(n, NORM_FLOOR));
        return tf.mul(xs, scale);
      },
    };
  });
  return norm(x) as tf.Tensor;
}

/**
 * The four shifted differences of the reference code on NHWC images: horizontal (along W), vertical
 * (along H) and the two diagonals:
 *   d1 = x[:, :, :-1] − x[:, :, 1:]          d2 = x[:, :-1, :] − x[:, 1:, :]
 *   d3 = x[:, 1:, :-1] − x[:, :-1, 1:]       d4 = x[:, :-1, :-1] − x[:, 1:, 1:]
 */
export function shiftedDifferences(x: tf.Tensor4D): tf.Tensor4D[] {
  const [n, h, w, c] = x.shape;
  const part = (y0: number, x0: number, hh: number, ww: number) => tf.slice(x, [0, y0, x0, 0], [n, hh, ww, c]);
  return [
    tf.sub(part(0, 0, h, w - 1), part(0, 1, h, w - 1)),
    tf.sub(part(0, 0, h - 1, w), part(1, 0, h - 1, w)),
    tf.sub(part(1, 0, h - 1, w - 1), part(0, 1, h - 1, w - 1)),
    tf.sub(part(0, 0, h - 1, w - 1), part(1, 1, h - 1, w - 1)),
  ];
}

/** TV-L2 as the reference code: Σ over the 4 shifted differences of the Frobenius norm over the whole batch. */
export function totalVariationL2(x: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => tf.addN(shiftedDifferences(x).map((d) => l2Norm(d))) as tf.Scalar);
}

/** TV-L1: Σ over the 4 shifted differences of mean |difference| (the reference's ImageNet prior, pixels in [0, 1]). */
export function totalVariationL1(x: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => tf.addN(shiftedDifferences(x).map((d) => tf.mean(tf.abs(d)))) as tf.Scalar);
}

/** The l2 prior: mean over the images of each image's L2 norm (the reference's ImageNet form). */
export function l2Prior(x: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => tf.mean(l2Norm(x, [1, 2, 3])) as tf.Scalar);
}

/** Circular shift of `x` by `shift` along `axis`, as torch.roll: out[i] = x[(i − shift) mod n]. */
function roll(x: tf.Tensor4D, shift: number, axis: 1 | 2): tf.Tensor4D {
  const n = x.shape[axis];
  const s = ((shift % n) + n) % n;
  if (s === 0) return x;
  const [head, tail] = tf.split(x, [n - s, s], axis);
  return tf.concat([tail, head], axis) as tf.Tensor4D;
}

/**
 * The augmentation the teacher sees each iteration: torch.roll-style circular shift by `dy` rows and
 * `dx` columns (H and W), then a horizontal flip (reverse along W) when `flip`. Differentiable, so the
 * gradient reaches the un-jittered pixels.
 */
export function jitterAndFlip(x: tf.Tensor4D, dy: number, dx: number, flip: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    const shifted = roll(roll(x, dy, 1), dx, 2);
    const out = flip ? tf.reverse(shifted, 2) : shifted;
    // Without shift or flip `out` is `x` itself; return a copy so callers may always dispose the result.
    return out === x ? tf.clone(x) : out;
  });
}

export interface Jitter {
  dy: number;
  dx: number;
  flip: boolean;
}

/**
 * One seeded draw of the jitter: dy and dx uniform integers in [−maxShift, maxShift] (random.randint in
 * the reference) and a flip with probability `flipProbability`. Always draws three numbers, so the
 * stream stays aligned whatever the settings.
 */
export function randomJitter(random: SeededRandom, maxShift: number, flipProbability: number): Jitter {
  if (!(Number.isInteger(maxShift) && maxShift >= 0)) throw new RangeError(`maxShift must be a non-negative integer; got ${maxShift}`);
  if (!(flipProbability >= 0 && flipProbability <= 1)) throw new RangeError(`flipProbability must be in [0, 1]; got ${flipProbability}`);
  const dy = random.int(2 * maxShift + 1) - maxShift;
  const dx = random.int(2 * maxShift + 1) - maxShift;
  const flip = random.next() < flipProbability;
  return { dy, dx, flip };
}
