import * as tf from '@tensorflow/tfjs';
import { batchMoments } from '../../core/tensors/bn-taps';
import type { SeededRandom } from '../../core/random';
import { conv, convParams, dense, denseParams, paramVariables, resizeTo, type LinearParams } from './params';

/** What a generator is built for. */
export interface GeneratorSpec {
  /** Size of the latent vector z. */
  latentSize: number;
  /** Classes of the teacher: the one-hot part of the input (any count, not the reference's fixed 10). */
  numClasses: number;
  /** [height, width, channels] of the images. */
  imageShape: [number, number, number];
  /** Channels of the first two conv stages (the third has half): 128 in the paper. */
  channels: number;
}

/** BatchNorm in training mode (batch statistics, as the reference generator runs) with learnable γ, β. */
interface BatchNormParams {
  gamma: tf.Variable;
  beta: tf.Variable;
}

const BN_EPSILON = 1e-5;
const LEAKY_SLOPE = 0.2;

function batchNormParams(random: SeededRandom, channels: number): BatchNormParams {
  // The reference initialises γ ~ N(1, 0.02), β = 0.
  const gamma = Float32Array.from({ length: channels }, () => 1 + 0.02 * random.gaussian());
  return tf.tidy(() => ({ gamma: tf.variable(tf.tensor1d(gamma), true), beta: tf.variable(tf.zeros([channels]), true) }));
}

function batchNorm(x: tf.Tensor4D, p: BatchNormParams): tf.Tensor4D {
  const { mean, variance } = batchMoments(x, [0, 1, 2]);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, BN_EPSILON))), p.gamma), p.beta);
}

/**
 * NaturalInversion's one-to-one conditional generator: [z, one-hot(target)] → Dense → 128×(H/4)×(W/4)
 * → BN, LReLU(0.2) → up ×2 → conv3×3 128 → BN, LReLU → up ×2 → conv3×3 64 → BN, LReLU → conv3×3 → C,
 * with no output activation (the FTP and ACS that follow bound it). A side not divisible by 4 is built
 * at the next multiple of 4 and centre-cropped (10 → 12 → 10). BN always uses batch statistics.
 */
export class ConditionalGenerator {
  readonly variables: tf.Variable[];
  private readonly base: [number, number];
  private readonly input: LinearParams;
  private readonly convs: [LinearParams, LinearParams, LinearParams];
  private readonly norms: [BatchNormParams, BatchNormParams, BatchNormParams];

  constructor(
    readonly spec: GeneratorSpec,
    random: SeededRandom,
  ) {
    const [h, w, c] = spec.imageShape;
    const wide = spec.channels;
    const narrow = Math.max(1, Math.round(wide / 2));
    this.base = [Math.ceil(h / 4), Math.ceil(w / 4)];
    this.input = denseParams(random, spec.latentSize + spec.numClasses, wide * this.base[0] * this.base[1], 'torch-default');
    this.convs = [
      convParams(random, 3, wide, wide, 'kaiming-normal'),
      convParams(random, 3, wide, narrow, 'kaiming-normal'),
      convParams(random, 3, narrow, c, 'kaiming-normal'),
    ];
    this.norms = [batchNormParams(random, wide), batchNormParams(random, wide), batchNormParams(random, narrow)];
    this.variables = [...paramVariables([this.input, ...this.convs]), ...this.norms.flatMap((n) => [n.gamma, n.beta])];
  }

  /** Images [n, H, W, C] for latents z [n, latentSize] and integer targets [n]. */
  apply(z: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor4D {
    return tf.tidy(() => {
      const [h, w] = this.spec.imageShape;
      const [h0, w0] = this.base;
      const n = z.shape[0];
      const oneHot = tf.oneHot(tf.cast(targets, 'int32'), this.spec.numClasses).toFloat();
      let x = tf.reshape(dense(tf.concat([z, oneHot as tf.Tensor2D], 1), this.input), [n, h0, w0, this.spec.channels]) as tf.Tensor4D;
      x = tf.leakyRelu(batchNorm(x, this.norms[0]), LEAKY_SLOPE);
      x = resizeTo(x, 2 * h0, 2 * w0);
      x = tf.leakyRelu(batchNorm(conv(x, this.convs[0]), this.norms[1]), LEAKY_SLOPE);
      x = resizeTo(x, 4 * h0, 4 * w0);
      x = tf.leakyRelu(batchNorm(conv(x, this.convs[1]), this.norms[2]), LEAKY_SLOPE);
      x = conv(x, this.convs[2]);
      if (4 * h0 === h && 4 * w0 === w) return x;
      const top = Math.floor((4 * h0 - h) / 2);
      const left = Math.floor((4 * w0 - w) / 2);
      return tf.slice(x, [0, top, left, 0], [n, h, w, x.shape[3]]);
    });
  }

  dispose(): void {
    tf.dispose(this.variables);
  }
}
