import * as tf from '@tensorflow/tfjs';
import { allFiniteValues, channelAffineOfFinite } from './channel-affine';
import { layerOverrideRegistration } from './layer-override';

/**
 * Training-mode BatchNormalization with its gradient in closed form.
 *
 * tfjs-layers normalises a training batch with `tf.moments` (Mean, Sub, Square, Mean) followed by
 * `tf.batchNorm`, and autodiff then walks all five ops back: about 19 full-size passes per layer
 * (9 of them products), where the closed form needs 8. With N the reduced count, x̂ = (x − μ)·r,
 * r = 1/√(σ² + ε):
 *   dβ = Σ dy,  dγ = r·Σ dy·(x − μ),
 *   dx = γr·dy − (γr³/N)·Σ dy·(x − μ) · (x − μ) − (γr/N)·Σ dy
 * (the same mathematics tfjs' chain computes, so results differ by float rounding only). On wasm
 * one [128, 32, 32, 16] layer's forward and backward took about 37 ms through the chain and 20–25
 * ms here (dev box, in isolation; inside a ResNet-20 step, where memory traffic dominates, the step
 * went from about 2,090 to 2,030 ms).
 *
 * `FastTrainingBatchNormalization` is tfjs-layers' own BatchNormalization class with only the
 * training branch of `call` replaced, for the common case (channels last, scale and center on);
 * everything else, inference included, is the original code. It is registered under the class
 * name 'BatchNormalization', so models built by the zoo and models deserialised from files
 * (imports, checkpoints, worker replicas) use it; their saved form is unchanged.
 */

/** The tfjs version whose BatchNormalization this subclasses; see `registerFastBatchNorm`. */
export const FAST_BATCH_NORM_TFJS_VERSION = '4.22.0';

/**
 * y = γ·(x − μ)/√(σ² + ε) + β over x's last axis, with μ and σ² the batch statistics of x over all
 * other axes (computed by the caller, e.g. with `batchMoments`, since they also feed the moving
 * averages); `centred` = x − μ when the caller has it already (saves recomputing it).
 * Differentiable with respect to x, γ and β, through the statistics too.
 *
 * On wasm the per-channel affine maps run as one depthwise conv each (`channelAffineOfFinite`)
 * when the per-channel values certify that every input is finite: μ and σ² finite mean x is, and
 * Σ dy and Σ dy·(x − μ) finite mean dy is (a NaN or ∞ anywhere would make them non-finite).
 * Otherwise, and on other backends, plain ops do it, with IEEE NaN/∞ semantics.
 */
export function batchNormTraining(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  epsilon: number,
  centred?: tf.Tensor,
): tf.Tensor {
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  const count = x.size / x.shape[x.rank - 1];
  const onWasm = tf.getBackend() === 'wasm';
  const op = tf.customGrad((input, scale, offset, save) => {
    const [xs, g, b] = [input, scale, offset] as tf.Tensor[];
    const r = tf.rsqrt(tf.add(variance, epsilon));
    const gr = tf.mul(g, r);
    let c: tf.Tensor;
    let y: tf.Tensor;
    if (onWasm && allFiniteValues(mean, variance, g, b, gr)) {
      c = centred ?? channelAffineOfFinite(xs, tf.onesLike(mean), tf.neg(mean));
      y = channelAffineOfFinite(c, gr, b);
    } else {
      c = centred ?? tf.sub(xs, mean);
      y = tf.batchNorm(xs, mean, variance, b, g, epsilon);
    }
    (save as tf.GradSaveFunc)([c, gr, r]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [c, grSaved, rSaved] = saved;
        const sumDy = tf.sum(dy, axes);
        const sumDyCentred = tf.sum(tf.mul(dy, c), axes);
        const centredCoefficient = tf.div(tf.mul(tf.neg(grSaved), tf.mul(tf.square(rSaved), sumDyCentred)), count);
        const constant = tf.div(tf.mul(tf.neg(grSaved), sumDy), count);
        const dx =
          onWasm && allFiniteValues(sumDy, sumDyCentred, centredCoefficient, constant)
            ? tf.add(channelAffineOfFinite(dy, grSaved, constant), channelAffineOfFinite(c, centredCoefficient))
            : tf.add(tf.add(tf.mul(dy, grSaved), tf.mul(c, centredCoefficient)), constant);
        return [dx, tf.mul(sumDyCentred, rSaved), sumDy];
      },
    };
  });
  return op(x, gamma, beta);
}

/**
 * μ, σ² (biased) and x − μ over all axes but the last, with the same values as `tf.moments` (whose
 * x − μ is a broadcasting subtraction; on wasm, when μ is finite — so x is — it is one depthwise
 * conv). Not for differentiation: the statistics feed `batchNormTraining`, whose gradient covers them.
 */
export function batchMoments(x: tf.Tensor): { mean: tf.Tensor; variance: tf.Tensor; centred: tf.Tensor } {
  return tf.tidy(() => {
    const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
    const mean = tf.mean(x, axes);
    const centred = tf.getBackend() === 'wasm' && allFiniteValues(mean) ? channelAffineOfFinite(x, tf.onesLike(mean), tf.neg(mean)) : tf.sub(x, mean);
    return { mean, variance: tf.mean(tf.square(centred), axes), centred };
  });
}

/** What `call` needs of tfjs-layers' BatchNormalization (declared private there). */
interface BatchNormInternals {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: tf.LayerVariable;
  beta: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

type LayerArgs = Parameters<typeof tf.layers.batchNormalization>[0];
type BatchNormClass = new (args?: LayerArgs) => tf.layers.Layer;
type Kwargs = Record<string, unknown>;

/** tfjs-layers' BatchNormalization class (not exported by name from @tensorflow/tfjs). */
const BatchNormalization = tf.layers.batchNormalization({}).constructor as BatchNormClass;

export class FastTrainingBatchNormalization extends BatchNormalization {
  static className = 'BatchNormalization';

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const self = this as unknown as BatchNormInternals;
    const input = Array.isArray(inputs) ? inputs[0] : inputs;
    const axis = self.axis >= 0 ? self.axis : self.axis + input.rank;
    const training = kwargs.training === true;
    if (!training || axis !== input.rank - 1 || input.rank < 2 || !self.scale || !self.center || input.dtype !== 'float32') {
      return super.call(inputs, kwargs);
    }
    return tf.tidy(() => {
      const { mean, variance, centred } = batchMoments(input);
      const out = batchNormTraining(input, self.gamma.read(), self.beta.read(), mean, variance, self.epsilon, centred);
      // The moving averages exactly as tfjs-layers updates them: v ← v − (v − value)·(1 − momentum).
      for (const [variable, value] of [
        [self.movingMean, mean],
        [self.movingVariance, variance],
      ] as const) {
        tf.tidy(() => {
          const current = variable.read();
          variable.write(tf.sub(current, tf.mul(tf.sub(current, value), 1 - self.momentum)));
        });
      }
      return out;
    });
  }
}

/**
 * Makes 'BatchNormalization' deserialise to `FastTrainingBatchNormalization`. Idempotent. On another
 * tfjs version it is still registered (it only replaces the training branch of `call`, whose
 * moving-average rule it copies) with a warning: run test/tensors to check it.
 */
export const registerFastBatchNorm = layerOverrideRegistration(FastTrainingBatchNormalization, FAST_BATCH_NORM_TFJS_VERSION, 'the fast training BatchNorm');
