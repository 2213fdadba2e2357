import type * as tf from '@tensorflow/tfjs';

export const ARCHITECTURES = ['lenet5-bn', 'resnet-cifar', 'resnet-basic', 'vgg-bn'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** Everything needed to build a zoo model from scratch. */
export interface ModelSpec {
  architecture: Architecture;
  /** [height, width, channels] */
  inputShape: [number, number, number];
  numClasses: number;
  /** Channel-width multiplier (1 = the reference width; 0.5 = the half-width student). */
  width: number;
  /** resnet-cifar depth, 6n+2 (20, 32, 56, ...); resnet-basic: 18 or 34; VGG: number of conv blocks. Ignored by LeNet. */
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

/** A ModelSpec that cannot be built; the message says which field is wrong and what is accepted. */
export class ModelSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelSpecError';
  }
}

/** Smallest input side each architecture accepts (LeNet's two 5×5 convs and pools need 28). */
export const MIN_INPUT_SIDE: Record<Architecture, number> = { 'lenet5-bn': 28, 'resnet-cifar': 8, 'resnet-basic': 8, 'vgg-bn': 8 };

/** Default depth per architecture when the spec leaves it out. */
export const DEFAULT_DEPTH: Record<Architecture, number | undefined> = { 'lenet5-bn': undefined, 'resnet-cifar': 20, 'resnet-basic': 18, 'vgg-bn': 3 };

/** Basic blocks in each of resnet-basic's four stages, by depth (He et al. 2016, table 1). */
export const RESNET_BASIC_BLOCKS: Readonly<Record<number, readonly number[]>> = { 18: [2, 2, 2, 2], 34: [3, 4, 6, 3] };

/**
 * Checks a spec (for example one that arrived through GraphQL) and returns it with defaults filled
 * in (`depth`). Throws ModelSpecError naming the first bad field.
 */
export function validateModelSpec(spec: ModelSpec): ModelSpec {
  if (!spec || typeof spec !== 'object') throw new ModelSpecError('model spec must be an object');
  if (!(ARCHITECTURES as readonly string[]).includes(spec.architecture)) {
    throw new ModelSpecError(`unknown architecture "${spec.architecture}"; use one of ${ARCHITECTURES.join(', ')}`);
  }
  const arch = spec.architecture;
  const shape = spec.inputShape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new ModelSpecError(`inputShape must be [height, width, channels] of positive integers; got ${JSON.stringify(shape)}`);
  }
  const [h, w, c] = shape;
  const minSide = MIN_INPUT_SIDE[arch];
  if (h < minSide || w < minSide) {
    throw new ModelSpecError(`${arch} needs images of at least ${minSide}×${minSide}; got ${h}×${w}`);
  }
  if (c !== 1 && c !== 3) throw new ModelSpecError(`inputShape channels must be 1 (grey) or 3 (RGB); got ${c}`);
  if (!Number.isInteger(spec.numClasses) || spec.numClasses < 2) {
    throw new ModelSpecError(`numClasses must be an integer ≥ 2; got ${spec.numClasses}`);
  }
  if (typeof spec.width !== 'number' || !Number.isFinite(spec.width) || spec.width <= 0 || spec.width > 16) {
    throw new ModelSpecError(`width must be a channel multiplier in (0, 16]; got ${spec.width}`);
  }
  let depth = spec.depth ?? DEFAULT_DEPTH[arch];
  if (arch === 'resnet-cifar') {
    if (!Number.isInteger(depth) || depth! < 8 || (depth! - 2) % 6 !== 0) {
      throw new ModelSpecError(`resnet-cifar depth must be 6n+2 with n ≥ 1 (8, 14, 20, 32, 44, 56, 110); got ${spec.depth}`);
    }
  } else if (arch === 'resnet-basic') {
    if (!Object.hasOwn(RESNET_BASIC_BLOCKS, String(depth))) {
      throw new ModelSpecError(`resnet-basic depth must be one of ${Object.keys(RESNET_BASIC_BLOCKS).join(', ')}; got ${spec.depth}`);
    }
  } else if (arch === 'vgg-bn') {
    // Each block halves the image with a 2×2 max pool; at least one pixel must remain.
    const maxBlocks = Math.floor(Math.log2(Math.min(h, w)));
    if (!Number.isInteger(depth) || depth! < 1 || depth! > maxBlocks) {
      throw new ModelSpecError(`vgg-bn depth is the number of conv blocks, an integer in 1..${maxBlocks} for ${h}×${w} images; got ${spec.depth}`);
    }
  } else {
    depth = undefined;
  }
  const out: ModelSpec = { architecture: arch, inputShape: [h, w, c], numClasses: spec.numClasses, width: spec.width };
  if (depth !== undefined) out.depth = depth;
  return out;
}
