import * as tf from '@tensorflow/tfjs';
import type { SeededRandom } from '../../core/random';
import type { PyramidLevel } from './feature-pyramid';
import { conv, convParams, paramVariables, resizeTo, type LinearParams } from './params';

/** One top-down step: to the next larger scale. */
interface TopDownStep {
  level: PyramidLevel;
  /** 1×1 conv from the previous scale's channels to this scale's (the reference's conv1..conv3). */
  reduce: LinearParams;
  /** 3×3 conv after adding the lateral feature (conv_31..conv_33). */
  smooth: LinearParams;
}

/**
 * NaturalInversion's Feature Transfer Pyramid decoder (the reference's Feature_Decoder, generalised to
 * any number of scales): starting from the smallest feature map, each step upsamples (nearest, to the
 * exact size of the next scale), applies a 1×1 conv to that scale's channel count, adds the teacher's
 * lateral feature map and applies a 3×3 conv. When the largest map is smaller than the image, the
 * result is upsampled to the image size. A 1×1 conv maps it to the image's channels, the image is
 * added, and a last 1×1 conv (initialised as the identity) mixes the channels. The output is pre-tanh (channel scaling applies tanh).
 * Because each 1×1 conv already maps to the lateral's channel count, the lateral is added as is.
 * No nonlinearity between convs, as the reference.
 */
export class FeatureTransferPyramid {
  readonly variables: tf.Variable[];
  private readonly steps: TopDownStep[];
  private readonly toImage: LinearParams;
  private readonly mix: LinearParams;

  /** `levels` largest first, as findFeaturePyramid returns them. */
  constructor(
    private readonly levels: readonly PyramidLevel[],
    private readonly imageShape: [number, number, number],
    random: SeededRandom,
  ) {
    const upward = [...levels].reverse();
    this.steps = upward.slice(1).map((level, i) => ({
      level,
      reduce: convParams(random, 1, upward[i].channels, level.channels, 'torch-default'),
      smooth: convParams(random, 3, level.channels, level.channels, 'torch-default'),
    }));
    const channels = imageShape[2];
    this.toImage = convParams(random, 1, levels[0].channels, channels, 'torch-default');
    // The reference's last 1×1 conv (conv6) has PyTorch's default init; on grey images that is one random
    // scalar in [−1, 1] that can flatten the image for many iterations (seen: a 0.06 output std). Starting
    // it as the identity makes every seed start from the generator's image plus the decoder's residual.
    this.mix = convParams(random, 1, channels, channels, 'identity');
    this.variables = paramVariables([...this.steps.flatMap((s) => [s.reduce, s.smooth]), this.toImage, this.mix]);
  }

  /** Pre-tanh decoder output [n, H, W, C] for `image` [n, H, W, C] and the teacher's maps at `levels` (same order). */
  apply(image: tf.Tensor4D, features: readonly tf.Tensor4D[]): tf.Tensor4D {
    if (features.length !== this.levels.length) throw new Error(`FTP expects ${this.levels.length} feature maps; got ${features.length}`);
    return tf.tidy(() => {
      const [h, w] = this.imageShape;
      let out = features[features.length - 1];
      this.steps.forEach((step, i) => {
        const lateral = features[features.length - 2 - i];
        const up = conv(resizeTo(out, step.level.height, step.level.width), step.reduce);
        out = conv(tf.add(up, lateral), step.smooth);
      });
      out = conv(resizeTo(out, h, w), this.toImage);
      return conv(tf.add(image, out), this.mix);
    });
  }

  dispose(): void {
    tf.dispose(this.variables);
  }
}
