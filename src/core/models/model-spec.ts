import type * as tf from '@tensorflow/tfjs';

export const ARCHITECTURES = ['lenet5-bn', 'resnet-cifar', 'vgg-bn'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** Everything needed to build a zoo model from scratch. */
export interface ModelSpec {
  architecture: Architecture;
  /** [height, width, channels] */
  inputShape: [number, number, number];
  numClasses: number;
  /** Channel-width multiplier (1 = the reference width; 0.5 = the half-width student). */
  width: number;
  /** ResNet depth, 6n+2 (20, 32, 56, ...); VGG: number of conv blocks. Ignored by LeNet. */
  depth?: number;
}

/** A model in memory with what Condense knows about it. `spec` is absent for imported models. */
export interface ModelHandle {
  name: string;
  model: tf.LayersModel;
  spec?: ModelSpec;
  /** Names of weights that are pruned with a mask (1 = kept), when the model came from a pruning stage. */
  masks?: Record<string, Uint8Array>;
}

export function modelInputShape(handle: ModelHandle): [number, number, number] {
  const shape = handle.model.inputs[0].shape;
  if (shape.length !== 4 || shape.slice(1).some((d) => d == null)) {
    throw new Error(`model ${handle.name} must take images [batch, height, width, channels]; its input is ${JSON.stringify(shape)}`);
  }
  return [shape[1]!, shape[2]!, shape[3]!];
}

export function modelNumClasses(handle: ModelHandle): number {
  const shape = handle.model.outputs[0].shape;
  const n = shape[shape.length - 1];
  if (shape.length !== 2 || n == null) {
    throw new Error(`model ${handle.name} must output logits [batch, classes]; its output is ${JSON.stringify(shape)}`);
  }
  return n;
}
