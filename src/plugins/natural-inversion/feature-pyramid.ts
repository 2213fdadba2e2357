import * as tf from '@tensorflow/tfjs';

/** One scale of the teacher's feature pyramid. */
export interface PyramidLevel {
  /** The layer whose output is this scale's feature map. */
  layerName: string;
  height: number;
  width: number;
  channels: number;
}

/** The teacher has no 4-D intermediate output the FTP could use. */
export class FeaturePyramidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FeaturePyramidError';
  }
}

/** The single symbolic output of a layer applied once, or undefined (shared or multi-output layers). */
function singleOutput(layer: tf.layers.Layer): tf.SymbolicTensor | undefined {
  if (layer.inboundNodes.length !== 1) return undefined;
  const output = layer.output;
  return Array.isArray(output) ? undefined : output;
}

/**
 * The teacher's feature maps at each spatial scale, read from the model's structure: walking the
 * layers in graph order, for each distinct spatial size no larger than the input, the last layer
 * whose 4-D (NHWC) output has that size, i.e. the map just before the network shrinks it (LeNet-5-BN
 * on 28×28: relu1 28×28, pool1 14×14, relu2 10×10, pool2 5×5; a CIFAR ResNet: the last block of each
 * stage). The input-sized scale is kept when a layer produces one, as the reference feeds ResNet's
 * layer1 (32×32 on 32×32 images) to its decoder. Levels come largest first.
 */
export function findFeaturePyramid(model: tf.LayersModel): PyramidLevel[] {
  const inputShape = model.inputs[0]?.shape;
  if (model.inputs.length !== 1 || inputShape?.length !== 4 || inputShape[1] == null || inputShape[2] == null) {
    throw new FeaturePyramidError(`model ${model.name} must take one image input [batch, height, width, channels]`);
  }
  const [inputHeight, inputWidth] = [inputShape[1], inputShape[2]];
  const lastAtSize = new Map<string, PyramidLevel>();
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const output = singleOutput(layer);
    const shape = output?.shape;
    if (shape === undefined || shape.length !== 4 || shape.slice(1).some((d) => d == null)) continue;
    const [height, width, channels] = shape.slice(1) as number[];
    if (height > inputHeight || width > inputWidth) continue;
    const key = `${height}x${width}`;
    // Re-inserting moves the size to the end of the map's order; sizes are sorted below anyway.
    lastAtSize.delete(key);
    lastAtSize.set(key, { layerName: layer.name, height, width, channels });
  }
  const levels = [...lastAtSize.values()].sort((a, b) => b.height * b.width - a.height * a.width);
  if (levels.length === 0) {
    throw new FeaturePyramidError(
      `model ${model.name} has no layer with a 4-D [batch, height, width, channels] output, so NaturalInversion's ` +
        'feature transfer pyramid has no feature maps to decode; use a convolutional teacher',
    );
  }
  return levels;
}

/**
 * The teacher's feature maps at `levels` for images `x`, in inference mode, as constants: they are
 * computed inside a custom-gradient op whose forward runs off the tape (no teacher backward pass is
 * ever recorded) and whose gradient is zero, like `with torch.no_grad()` in the reference.
 */
export type FeatureExtractor = (x: tf.Tensor4D) => tf.Tensor4D[];

export function featureExtractor(model: tf.LayersModel, levels: readonly PyramidLevel[]): FeatureExtractor {
  const outputs = levels.map((level) => singleOutput(model.getLayer(level.layerName))!);
  // Shares the teacher's layers and weights; never dispose it (that would dispose the teacher's weights).
  const features = tf.model({ inputs: model.inputs, outputs });
  const sizes = levels.map((l) => l.height * l.width * l.channels);
  return (x) =>
    tf.tidy(() => {
      const n = x.shape[0];
      const detached = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
        const input = args[0] as tf.Tensor4D;
        const maps = features.apply(input, { training: false });
        const list = Array.isArray(maps) ? (maps as tf.Tensor[]) : [maps as tf.Tensor];
        return {
          // One tensor (customGrad returns one): the maps flattened side by side.
          value: tf.concat(list.map((m) => tf.reshape(m, [n, -1])), 1),
          gradFunc: () => tf.zerosLike(input),
        };
      });
      const flat = detached(x) as tf.Tensor2D;
      return tf.split(flat, sizes, 1).map((part, i) => tf.reshape(part, [n, levels[i].height, levels[i].width, levels[i].channels]) as tf.Tensor4D);
    });
}
