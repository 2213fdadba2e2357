import * as tf from '@tensorflow/tfjs';
import { layerOverrideRegistration } from './layer-override';

/**
 * tfjs-layers' Conv2D with a gradient that computes only what a caller differentiates.
 *
 * tfjs-layers runs Conv2D through `tf.fused.conv2d`, whose custom gradient always computes the input
 * gradient and the filter gradient together. In training, the first conv's input is the batch of
 * images, which nobody differentiates: its input gradient (a full Conv2DBackpropInput at the largest
 * resolution of the net) is thrown away. Without bias and activation — every conv of the zoo, each
 * followed by BatchNorm — the fused op is the plain conv, and `tf.conv2d`'s registered gradient lets
 * tfjs prune the parts that lead to no differentiated tensor. Other configurations (bias, an
 * activation, channels first, dilation, causal padding) run tfjs-layers' own `call` unchanged.
 *
 * Registered under the class name 'Conv2D' (`registerPrunedGradientConv2D`), so zoo models and models
 * deserialised from files use it; their saved form is unchanged.
 */

/** The tfjs-layers version whose Conv2D this subclasses. */
export const PRUNED_GRADIENT_CONV2D_TFJS_VERSION = '4.22.0';

/** What `call` reads of tfjs-layers' Conv2D (declared protected there). */
interface Conv2DInternals {
  rank: number;
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  strides: number[];
  padding: 'valid' | 'same' | 'causal';
  dataFormat: 'channelsFirst' | 'channelsLast';
  dilationRate: number[];
  activation: { getClassName(): string } | null;
}

type LayerArgs = Parameters<typeof tf.layers.conv2d>[0];
type Conv2DClass = new (args: LayerArgs) => tf.layers.Layer;

/** tfjs-layers' Conv2D class (not exported by name from @tensorflow/tfjs). */
const Conv2D = tf.layers.conv2d({ filters: 1, kernelSize: 1 }).constructor as Conv2DClass;

export class PrunedGradientConv2D extends Conv2D {
  static className = 'Conv2D';

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[] {
    const self = this as unknown as Conv2DInternals;
    const input = Array.isArray(inputs) ? inputs[0] : inputs;
    const plain =
      (!Array.isArray(inputs) || inputs.length === 1) &&
      self.rank === 2 &&
      input.rank === 4 &&
      self.bias == null &&
      (self.activation == null || self.activation.getClassName() === 'linear') &&
      self.dataFormat === 'channelsLast' &&
      self.padding !== 'causal' &&
      self.dilationRate.every((d) => d === 1);
    if (!plain) return super.call(inputs, kwargs);
    return tf.tidy(() =>
      tf.conv2d(input as tf.Tensor4D, self.kernel.read() as tf.Tensor4D, [self.strides[0], self.strides[1]], self.padding as 'valid' | 'same', 'NHWC'),
    );
  }
}

/**
 * Makes 'Conv2D' deserialise to `PrunedGradientConv2D`. Idempotent. On another tfjs-layers version it
 * is still registered, with a warning: run test/tensors to check it.
 */
export const registerPrunedGradientConv2D = layerOverrideRegistration(PrunedGradientConv2D, PRUNED_GRADIENT_CONV2D_TFJS_VERSION, 'the pruned-gradient Conv2D');
