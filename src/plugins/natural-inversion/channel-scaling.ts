import * as tf from '@tensorflow/tfjs';
import type { SeededRandom } from '../../core/random';

/**
 * Adaptive Channel Scaling (ACS). The reference multiplies the decoder's tanh output by a learnable
 * α per image and channel, initialised N(5, 1), in the teacher's normalised input space:
 * x = tanh(u)·α. Condense's pixels are in [0, 1] with no normalisation, so the same idea is mapped as
 *
 *   pixel = clip(0.5 + 0.5 · tanh(u) · α / ACS_REFERENCE_SCALE, 0, 1),   ACS_REFERENCE_SCALE = 5.
 *
 * Why this form: α keeps its role, a per-channel contrast gain on the tanh output around mid-grey;
 * with the paper's initial α = 5 the tanh range [−1, 1] lands exactly on [0, 1], and α > 5 raises the
 * contrast past it, where the clip stands for the bounded pixel range (the paper's normalised images
 * are unbounded; ours must stay valid images). The teacher sees, and the dataset stores, the clipped
 * pixels, so what is optimised is what is kept. Clipped pixels pass no gradient (to u or α).
 */
export const ACS_REFERENCE_SCALE = 5;

/** α initial values, [n, 1, 1, channels] row-major: N(mean, std²) per image and channel. */
export function initialAlpha(random: SeededRandom, count: number, channels: number, mean: number, std: number): Float32Array {
  return Float32Array.from({ length: count * channels }, () => mean + std * random.gaussian());
}

/** The final image in [0, 1] from the decoder's pre-tanh output `u` [n, H, W, C] and α [n, 1, 1, C]. */
export function channelScaledImage(u: tf.Tensor4D, alpha: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const contrast = tf.mul(tf.tanh(u), tf.mul(alpha, 0.5 / ACS_REFERENCE_SCALE));
    return tf.clipByValue(tf.add(contrast, 0.5), 0, 1);
  });
}

/**
 * The generator's raw output as the teacher's input for the FTP's feature maps: the same mapping
 * with α at its reference value and no tanh (the reference feeds the raw generator output, which lives
 * in its normalised space), clipped to valid pixels. Only ever seen without gradient.
 */
export function generatorPixels(raw: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.clipByValue(tf.add(tf.mul(raw, 0.5), 0.5), 0, 1));
}
