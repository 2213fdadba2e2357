import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../random';
import { FastTrainingBatchNormalization } from '../tensors/batch-norm-training';
import { PrunedGradientConv2D } from '../tensors/conv2d-layer';
import { ARCHITECTURES, type Architecture, DEFAULT_DEPTH, MIN_INPUT_SIDE, type ModelSpec, RESNET_BASIC_BLOCKS, validateModelSpec } from './model-spec';

/**
 * The model zoo. Every model is a functional tf.layers model made only of standard layers, so a
 * plain @tensorflow/tfjs can load an export. Outputs are logits (no softmax).
 *
 * Conventions shared by all architectures:
 * - convs and dense layers followed by BatchNorm have no bias (the BN beta plays its role);
 * - BatchNorm uses momentum 0.9 and epsilon 1e-5 (PyTorch's defaults, so BN statistics and
 *   reference numbers from the papers line up; Keras' 0.99 is too slow for short runs);
 * - conv kernels use He-normal, dense kernels Glorot-uniform, each seeded from `seed` in layer order.
 */

export const BN_MOMENTUM = 0.9;
export const BN_EPSILON = 1e-5;

/** Channel count scaled by the width multiplier, never below one. */
export function scaledChannels(channels: number, width: number): number {
  return Math.max(1, Math.round(channels * width));
}

/** Hands out initializer seeds in layer order so a given `seed` always builds the same weights. */
class LayerFactory {
  private readonly random: SeededRandom;

  constructor(seed: number) {
    this.random = new SeededRandom(seed);
  }

  conv(name: string, filters: number, kernelSize: number, strides = 1, padding: 'same' | 'valid' = 'same', useBias = false): tf.layers.Layer {
    return new PrunedGradientConv2D({
      name,
      filters,
      kernelSize,
      strides,
      padding,
      useBias,
      kernelInitializer: tf.initializers.heNormal({ seed: this.random.deriveSeed() }),
    });
  }

  dense(name: string, units: number, useBias = true): tf.layers.Layer {
    return tf.layers.dense({
      name,
      units,
      useBias,
      kernelInitializer: tf.initializers.glorotUniform({ seed: this.random.deriveSeed() }),
    });
  }

  bn(name: string): tf.layers.Layer {
    return new FastTrainingBatchNormalization({ name, axis: -1, momentum: BN_MOMENTUM, epsilon: BN_EPSILON });
  }

  relu(name: string): tf.layers.Layer {
    return tf.layers.activation({ name, activation: 'relu' });
  }
}

type Sym = tf.SymbolicTensor;
const apply = (layer: tf.layers.Layer, x: Sym | Sym[]): Sym => layer.apply(x) as Sym;

/**
 * LeNet-5 with BatchNorm after every conv and hidden dense layer. On 28×28 inputs the first conv
 * pads 'same' so the feature maps match the classic 32×32 LeNet (28 → 14 → 10 → 5).
 */
function buildLenet5Bn(spec: ModelSpec, f: LayerFactory): tf.LayersModel {
  const [h, w] = spec.inputShape;
  const c1 = scaledChannels(6, spec.width);
  const c2 = scaledChannels(16, spec.width);
  const d1 = scaledChannels(120, spec.width);
  const d2 = scaledChannels(84, spec.width);
  const input = tf.input({ name: 'input', shape: spec.inputShape });
  const firstPadding = Math.min(h, w) < 32 ? 'same' : 'valid';
  let x = apply(f.conv('conv1', c1, 5, 1, firstPadding), input);
  x = apply(f.bn('bn1'), x);
  x = apply(f.relu('relu1'), x);
  x = apply(tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2, strides: 2 }), x);
  x = apply(f.conv('conv2', c2, 5, 1, 'valid'), x);
  x = apply(f.bn('bn2'), x);
  x = apply(f.relu('relu2'), x);
  x = apply(tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2, strides: 2 }), x);
  x = apply(tf.layers.flatten({ name: 'flatten' }), x);
  x = apply(f.dense('fc1', d1, false), x);
  x = apply(f.bn('bn3'), x);
  x = apply(f.relu('relu3'), x);
  x = apply(f.dense('fc2', d2, false), x);
  x = apply(f.bn('bn4'), x);
  x = apply(f.relu('relu4'), x);
  const logits = apply(f.dense('logits', spec.numClasses), x);
  return tf.model({ name: `lenet5-bn-w${spec.width}`, inputs: input, outputs: logits });
}

/** One basic block: conv3×3-BN-ReLU-conv3×3-BN, plus identity or 1×1-conv+BN (option B) shortcut, then ReLU. */
function basicBlock(f: LayerFactory, x: Sym, name: string, filters: number, stride: number): Sym {
  const inChannels = x.shape[x.shape.length - 1];
  let y = apply(f.conv(`${name}_conv1`, filters, 3, stride), x);
  y = apply(f.bn(`${name}_bn1`), y);
  y = apply(f.relu(`${name}_relu1`), y);
  y = apply(f.conv(`${name}_conv2`, filters, 3, 1), y);
  y = apply(f.bn(`${name}_bn2`), y);
  let shortcut = x;
  if (stride !== 1 || inChannels !== filters) {
    shortcut = apply(f.conv(`${name}_shortcut_conv`, filters, 1, stride), x);
    shortcut = apply(f.bn(`${name}_shortcut_bn`), shortcut);
  }
  const sum = apply(tf.layers.add({ name: `${name}_add` }), [y, shortcut]);
  return apply(f.relu(`${name}_relu2`), sum);
}

/** One stage of a basic-block ResNet: `blocks` blocks of `channels` × width channels, the first with `stride`. */
interface ResnetStage {
  channels: number;
  blocks: number;
  stride: number;
}

/**
 * A basic-block ResNet: stem conv3×3 (stride 1)-BN-ReLU, the stages, global average pool, dense
 * logits. Layers are named `stem_*`, `stage{s}_block{b}_*`, `gap`, `logits`.
 */
function buildBasicBlockResnet(spec: ModelSpec, f: LayerFactory, name: string, stemChannels: number, stages: ResnetStage[]): tf.LayersModel {
  const input = tf.input({ name: 'input', shape: spec.inputShape });
  let x = apply(f.conv('stem_conv', scaledChannels(stemChannels, spec.width), 3), input);
  x = apply(f.bn('stem_bn'), x);
  x = apply(f.relu('stem_relu'), x);
  stages.forEach(({ channels, blocks, stride }, stage) => {
    const filters = scaledChannels(channels, spec.width);
    for (let b = 0; b < blocks; b++) {
      x = basicBlock(f, x, `stage${stage + 1}_block${b + 1}`, filters, b === 0 ? stride : 1);
    }
  });
  x = apply(tf.layers.globalAveragePooling2d({ name: 'gap' }), x);
  const logits = apply(f.dense('logits', spec.numClasses), x);
  return tf.model({ name, inputs: input, outputs: logits });
}

/** He et al. (2016) CIFAR ResNet: depth 6n+2, three stages of n basic blocks at 16/32/64 × width channels. */
function buildResnetCifar(spec: ModelSpec, f: LayerFactory): tf.LayersModel {
  const depth = spec.depth!;
  const blocks = (depth - 2) / 6;
  const stages = [16, 32, 64].map((channels, stage) => ({ channels, blocks, stride: stage > 0 ? 2 : 1 }));
  return buildBasicBlockResnet(spec, f, `resnet${depth}-cifar-w${spec.width}`, 16, stages);
}

/**
 * ResNet-18/34 (He et al. 2016 basic blocks) as DeepInversion and kuangliu/pytorch-cifar use it on
 * CIFAR: 64-channel stem without max pool, four stages of 64/128/256/512 × width channels at
 * strides 1, 2, 2, 2.
 */
function buildResnetBasic(spec: ModelSpec, f: LayerFactory): tf.LayersModel {
  const depth = spec.depth!;
  const stages = RESNET_BASIC_BLOCKS[depth].map((blocks, stage) => ({ channels: 64 * 2 ** stage, blocks, stride: stage > 0 ? 2 : 1 }));
  return buildBasicBlockResnet(spec, f, `resnet${depth}-basic-w${spec.width}`, 64, stages);
}

/** Channels of VGG block i (0-based): 32, 64, 128, then doubling up to 512. */
export function vggBlockChannels(block: number): number {
  return Math.min(512, 32 * 2 ** block);
}

/** Small VGG: `depth` blocks of (conv3×3-BN-ReLU) ×2 + maxpool 2, then flatten and a dense classifier. */
function buildVggBn(spec: ModelSpec, f: LayerFactory): tf.LayersModel {
  const depth = spec.depth!;
  const input = tf.input({ name: 'input', shape: spec.inputShape });
  let x: Sym = input;
  for (let b = 0; b < depth; b++) {
    const filters = scaledChannels(vggBlockChannels(b), spec.width);
    for (let c = 1; c <= 2; c++) {
      const name = `block${b + 1}_conv${c}`;
      x = apply(f.conv(name, filters, 3), x);
      x = apply(f.bn(`block${b + 1}_bn${c}`), x);
      x = apply(f.relu(`block${b + 1}_relu${c}`), x);
    }
    x = apply(tf.layers.maxPooling2d({ name: `block${b + 1}_pool`, poolSize: 2, strides: 2 }), x);
  }
  x = apply(tf.layers.flatten({ name: 'flatten' }), x);
  const logits = apply(f.dense('logits', spec.numClasses), x);
  return tf.model({ name: `vgg${depth}-bn-w${spec.width}`, inputs: input, outputs: logits });
}

const BUILDERS: Record<Architecture, (spec: ModelSpec, f: LayerFactory) => tf.LayersModel> = {
  'lenet5-bn': buildLenet5Bn,
  'resnet-cifar': buildResnetCifar,
  'resnet-basic': buildResnetBasic,
  'vgg-bn': buildVggBn,
};

/**
 * Builds a fresh model from a spec (validated first; ModelSpecError on bad fields). The same spec and
 * seed always give the same initial weights.
 */
export function buildModel(spec: ModelSpec, seed = 0): tf.LayersModel {
  const valid = validateModelSpec(spec);
  return BUILDERS[valid.architecture](valid, new LayerFactory(seed));
}

export interface ArchitectureDescription {
  architecture: Architecture;
  description: string;
  /** What `depth` means for this architecture, or null when it is ignored. */
  depth: string | null;
  defaultDepth: number | null;
  minInputSide: number;
}

const DESCRIPTIONS: Record<Architecture, { description: string; depth: string | null }> = {
  'lenet5-bn': {
    description: 'LeNet-5 with BatchNorm: conv5×5(6)-pool-conv5×5(16)-pool-dense120-dense84-dense, channels × width (0.5 = the half-width student)',
    depth: null,
  },
  'resnet-cifar': {
    description: 'He et al. CIFAR ResNet: basic blocks in three stages of 16/32/64 × width channels, 1×1-conv projection shortcuts, global average pool',
    depth: 'total layers, 6n+2 (20, 32, 44, 56, 110)',
  },
  'resnet-basic': {
    description: 'ResNet-18/34 for CIFAR (DeepInversion, kuangliu/pytorch-cifar): conv3×3 stem without max pool, basic blocks in four stages of 64/128/256/512 × width channels, 1×1-conv projection shortcuts, global average pool',
    depth: 'total layers, 18 (2-2-2-2 blocks) or 34 (3-4-6-3)',
  },
  'vgg-bn': {
    description: 'small VGG with BatchNorm: blocks of two conv3×3-BN-ReLU and a 2×2 max pool, 32/64/128 × width channels, dense classifier',
    depth: 'number of conv blocks',
  },
};

/** The zoo's architectures with what their parameters mean, for listings (GraphQL, CLI). */
export function describeArchitectures(): ArchitectureDescription[] {
  return ARCHITECTURES.map((architecture) => ({
    architecture,
    ...DESCRIPTIONS[architecture],
    defaultDepth: DEFAULT_DEPTH[architecture] ?? null,
    minInputSide: MIN_INPUT_SIDE[architecture],
  }));
}
