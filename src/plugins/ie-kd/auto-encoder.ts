import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../../core/random';
import { decodeFramed, encodeFramed, Float32Reader } from '../../core/checkpoints/framed-buffer';
import { modelWeightArrays, restoreModelWeights } from '../../core/checkpoints/model-weights';

/** A conv3×3 ('same') + BatchNorm + LeakyReLU(0.1) block, appended to `model`. */
function convBlock(model: tf.Sequential, name: string, filters: number, random: SeededRandom, inputShape?: [number, number, number], activation = true): void {
  model.add(
    tf.layers.conv2d({
      name: `${name}_conv`,
      filters,
      kernelSize: 3,
      padding: 'same',
      useBias: !activation,
      kernelInitializer: tf.initializers.heNormal({ seed: random.deriveSeed() }),
      ...(inputShape ? { inputShape } : {}),
    }),
  );
  if (!activation) return;
  model.add(tf.layers.batchNormalization({ name: `${name}_bn`, axis: -1, momentum: 0.9, epsilon: 1e-5 }));
  model.add(tf.layers.leakyReLU({ name: `${name}_lrelu`, alpha: 0.1 }));
}

/**
 * The factor encoder ("paraphraser" encoder): three conv3×3+BN+LeakyReLU(0.1) blocks,
 * channels in → in → factorChannels → factorChannels, spatial size kept.
 */
export function buildFactorEncoder(featureShape: [number, number, number], factorChannels: number, seed: number, name: string): tf.Sequential {
  const random = new SeededRandom(seed);
  const inChannels = featureShape[2];
  const model = tf.sequential({ name });
  convBlock(model, `${name}_1`, inChannels, random, featureShape);
  convBlock(model, `${name}_2`, factorChannels, random);
  convBlock(model, `${name}_3`, factorChannels, random);
  return model;
}

/**
 * The mirrored decoder: conv3×3+BN+LeakyReLU blocks factorChannels → in → in, then a plain
 * conv3×3 with bias to the feature's channels (linear output, so it can reproduce any feature value).
 */
export function buildFactorDecoder(featureShape: [number, number, number], factorChannels: number, seed: number, name: string): tf.Sequential {
  const random = new SeededRandom(seed);
  const inChannels = featureShape[2];
  const model = tf.sequential({ name });
  convBlock(model, `${name}_1`, factorChannels, random, [featureShape[0], featureShape[1], factorChannels]);
  convBlock(model, `${name}_2`, inChannels, random);
  convBlock(model, `${name}_out`, inChannels, random, undefined, false);
  return model;
}

const AE_MAGIC = 'CNDIEAE1';
const AE_DESCRIPTION = 'an ie-kd auto-encoder checkpoint';

/** Every weight of the trained auto-encoder (BatchNorm statistics too) and its final loss, as one buffer. */
export async function encodeAutoEncoder(models: tf.LayersModel[], finalLoss: number): Promise<Buffer> {
  const { shapes, arrays } = await modelWeightArrays(models);
  return encodeFramed(AE_MAGIC, { finalLoss, shapes }, arrays);
}

/** Loads what encodeAutoEncoder saved into `models` (refusing other shapes); returns the final loss. */
export async function restoreAutoEncoder(buffer: Buffer, models: tf.LayersModel[]): Promise<number> {
  const { header, body } = decodeFramed<{ finalLoss: number; shapes: number[][] }>(buffer, AE_MAGIC, AE_DESCRIPTION);
  restoreModelWeights(models, header.shapes, new Float32Reader(body, AE_DESCRIPTION), AE_DESCRIPTION);
  return header.finalLoss;
}
