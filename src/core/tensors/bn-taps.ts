import * as tf from '@tensorflow/tfjs';
import { batchMoments as momentsAndCentred } from './batch-norm-training';
import {
  BN_STATISTICS_GRAD_KERNEL,
  bnStatisticsKernelsRegistered,
  CHANNEL_MOMENTS_KERNEL,
  STATISTIC_GAP_NORMS_KERNEL,
  type BnStatisticsGradAttrs,
} from './bn-statistics-kernels';

/** What one BatchNormalization layer saw in a forward pass, next to its running statistics. */
export interface BnTap {
  layerName: string;
  /** The layer's input, [batch, ..., channels]. Owned by the caller (inside the caller's tidy/grad). */
  input: tf.Tensor;
  /** The layer's moving mean and variance, [channels]. The model's own variables: never dispose them. */
  movingMean: tf.Tensor1D;
  movingVariance: tf.Tensor1D;
}

export interface TappedForward {
  logits: tf.Tensor;
  taps: BnTap[];
}

/**
 * Runs a model forward and returns the logits with every BatchNorm layer's input. `training`
 * (default false) is passed to the layers: true normalises with batch statistics and, as in
 * tfjs-layers, also moves the running statistics; DeepInversion's teacher runs with false.
 */
export type TappedModel = (x: tf.Tensor, options?: { training?: boolean }) => TappedForward;

export class BnTapError extends Error {}

export function isBatchNorm(layer: tf.layers.Layer): boolean {
  return layer.getClassName() === 'BatchNormalization';
}

export function movingStatistic(layer: tf.layers.Layer, suffix: 'moving_mean' | 'moving_variance'): tf.Tensor1D {
  const weight = layer.weights.find((w) => w.originalName.endsWith(suffix) || w.name.endsWith(suffix));
  if (weight === undefined) {
    throw new BnTapError(`BatchNormalization layer ${layer.name} has no ${suffix} weight`);
  }
  return weight.read() as tf.Tensor1D;
}

/**
 * Builds one functional model over the same layers with the logits and every BatchNormalization
 * layer's input as outputs, so a gradient function can reach the BN inputs eagerly (DeepInversion's
 * feature-statistics loss). Weights are shared with `model`, not copied. BN layers inside nested
 * models are not reached: the zoo's models are flat; a nested one is refused.
 */
export function tapBatchNormInputs(model: tf.LayersModel): TappedModel {
  if (model.outputs.length !== 1) {
    throw new BnTapError(`model ${model.name} has ${model.outputs.length} outputs; BN taps need a single logits output`);
  }
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel && layer.layers.some(isBatchNorm)) {
      throw new BnTapError(`model ${model.name} nests model ${layer.name} with BatchNorm layers; flatten it first`);
    }
  }
  const bnLayers = model.layers.filter(isBatchNorm);
  const bnInputs = bnLayers.map((layer) => {
    if (layer.inboundNodes.length !== 1) {
      throw new BnTapError(`BatchNormalization layer ${layer.name} is applied ${layer.inboundNodes.length} times; its input is ambiguous`);
    }
    return layer.input as tf.SymbolicTensor;
  });
  const tapped = tf.model({ inputs: model.inputs, outputs: [model.outputs[0], ...bnInputs] });
  const statistics = bnLayers.map((layer) => ({
    layerName: layer.name,
    movingMean: movingStatistic(layer, 'moving_mean'),
    movingVariance: movingStatistic(layer, 'moving_variance'),
  }));
  return (x, options = {}) => {
    const outputs = tapped.apply(x, { training: options.training ?? false }) as tf.Tensor[];
    const [logits, ...inputs] = outputs;
    return {
      logits,
      taps: statistics.map((s, i) => ({ ...s, input: inputs[i] })),
    };
  };
}

/**
 * Batch mean and biased variance of `x` over `axes`, as tf.moments, with one custom gradient:
 * dx = dMean/n + (2/n)·dVar·(x − mean). tf.moments' own gradient chains Mean, Sub and Square
 * gradients (about eight full-size passes, two of them multiplications by a tensor of ones); this
 * is two. The term of the mean inside the variance, −(2/n)·Σ(x − mean)·dVar, is zero exactly and
 * left out.
 */
export function batchMoments(x: tf.Tensor, axes: number[]): { mean: tf.Tensor; variance: tf.Tensor } {
  const count = axes.reduce((n, axis) => n * x.shape[axis], 1);
  const stacked = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const mean = tf.mean(input, axes);
    const centred = tf.sub(input, mean);
    const variance = tf.mean(tf.square(centred), axes);
    save([centred]);
    return {
      value: tf.stack([mean, variance]),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [dMean, dVariance] = tf.unstack(dy);
        return tf.add(tf.mul(saved[0], tf.mul(dVariance, 2 / count)), tf.div(dMean, count));
      },
    };
  })(x) as tf.Tensor;
  const [mean, variance] = tf.unstack(stacked);
  return { mean, variance };
}

/** Smallest statistic-distance norm divided by in the loss' gradient (the gradient of ‖d‖ at d = 0 is taken as 0). */
const NORM_FLOOR = 1e-12;

/**
 * DeepInversion's feature-statistics loss: Σ over BN layers of w_l·(‖μ_batch − μ_running‖₂ + ‖σ²_batch − σ²_running‖₂),
 * with the batch statistics of each layer's input over every axis but the channel axis (biased variance,
 * as BatchNorm normalises with it). `layerWeights` (default all 1) gives one w_l per tap, e.g.
 * `[firstBnMultiplier, 1, 1, ...]` as the reference's ImageNet code weights the first BN layer by 10.
 *
 * One custom gradient over every tap: with n values per channel, dμ = μ − μ_running, dσ² = σ² − σ²_running,
 *   ∂loss/∂x = w_l·[dμ/(n‖dμ‖) + (2/n)·(x − μ)·dσ²/‖dσ²‖]   (per channel, broadcast over x),
 * the mean's share inside the variance, −(2/n)·Σ(x − μ)·…, being zero exactly. Composed from tfjs ops
 * (moments, norms, their gradients) the loss and its gradient took 97 kernel calls per BN layer, most
 * of them on [C]-sized vectors, where a GPU step is bound by launches; this takes 32 (34 on wasm, whose
 * x − μ is the depthwise conv of batch-norm-training's `batchMoments`). A backend with the kernels of
 * bn-statistics-kernels.ts (webgpu) runs the same loss through them: moments, both norms and the
 * gradient as one kernel each, nothing of x's size kept but x.
 */
export function bnStatisticsLoss(taps: readonly BnTap[], layerWeights?: readonly number[]): tf.Scalar {
  if (taps.length === 0) throw new BnTapError('bnStatisticsLoss needs at least one BatchNorm layer');
  if (layerWeights !== undefined && layerWeights.length !== taps.length) {
    throw new BnTapError(`bnStatisticsLoss got ${layerWeights.length} layer weights for ${taps.length} BatchNorm layers`);
  }
  const weights = taps.map((_, i) => layerWeights?.[i] ?? 1);
  const counts = taps.map((tap) => tap.input.size / tap.input.shape[tap.input.rank - 1]);
  if (bnStatisticsKernelsRegistered() && taps.every((tap) => tap.input.dtype === 'float32' && tap.input.rank >= 2)) {
    return bnStatisticsLossByKernels(taps, weights, counts);
  }
  const perTap = 5; // saved per tap: x − μ, dμ, dσ², ‖dμ‖, ‖dσ²‖
  const loss = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const inputs = args.slice(0, taps.length) as tf.Tensor[];
    const save = args[taps.length] as tf.GradSaveFunc;
    const saved: tf.Tensor[] = [];
    const terms = inputs.map((x, i) => {
      const { mean, variance, centred } = momentsAndCentred(x);
      const meanGap = tf.sub(mean, taps[i].movingMean);
      const varianceGap = tf.sub(variance, taps[i].movingVariance);
      const meanNorm = tf.sqrt(tf.sum(tf.square(meanGap)));
      const varianceNorm = tf.sqrt(tf.sum(tf.square(varianceGap)));
      saved.push(centred, meanGap, varianceGap, meanNorm, varianceNorm);
      const term = tf.add(meanNorm, varianceNorm);
      return weights[i] === 1 ? term : tf.mul(term, weights[i]);
    });
    save(saved);
    return {
      value: terms.length === 1 ? terms[0] : tf.addN(terms),
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) =>
        inputs.map((_, i) => {
          const [centred, meanGap, varianceGap, meanNorm, varianceNorm] = s.slice(i * perTap, (i + 1) * perTap);
          const scale = tf.mul(dy, weights[i] / counts[i]);
          const meanCoefficient = tf.mul(meanGap, tf.div(scale, tf.maximum(meanNorm, NORM_FLOOR)));
          const varianceCoefficient = tf.mul(varianceGap, tf.div(tf.mul(scale, 2), tf.maximum(varianceNorm, NORM_FLOOR)));
          return tf.add(tf.mul(centred, varianceCoefficient), meanCoefficient);
        }),
    };
  });
  return loss(...taps.map((tap) => tap.input)) as tf.Scalar;
}

/** bnStatisticsLoss through the backend's kernels of bn-statistics-kernels.ts. */
function bnStatisticsLossByKernels(taps: readonly BnTap[], weights: readonly number[], counts: readonly number[]): tf.Scalar {
  const engine = tf.engine();
  const perTap = 2; // saved per tap: moments, norms (x is saved after them)
  const loss = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const inputs = args.slice(0, taps.length) as tf.Tensor[];
    const save = args[taps.length] as tf.GradSaveFunc;
    const saved: tf.Tensor[] = [];
    const terms = inputs.map((x, i) => {
      const { movingMean, movingVariance } = taps[i];
      const moments = engine.runKernel(CHANNEL_MOMENTS_KERNEL, { x }) as tf.Tensor;
      const norms = engine.runKernel(STATISTIC_GAP_NORMS_KERNEL, { moments, movingMean, movingVariance }) as tf.Tensor;
      saved.push(moments, norms);
      const term = tf.sum(norms);
      return weights[i] === 1 ? term : tf.mul(term, weights[i]);
    });
    save([...saved, ...inputs]);
    return {
      value: terms.length === 1 ? terms[0] : tf.addN(terms),
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) =>
        inputs.map((_, i) => {
          const [moments, norms] = s.slice(i * perTap, (i + 1) * perTap);
          const x = s[taps.length * perTap + i];
          const attrs: BnStatisticsGradAttrs = { scale: weights[i] / counts[i], normFloor: NORM_FLOOR };
          const { movingMean, movingVariance } = taps[i];
          return engine.runKernel(BN_STATISTICS_GRAD_KERNEL, { x, moments, movingMean, movingVariance, norms, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
        }),
    };
  });
  return loss(...taps.map((tap) => tap.input)) as tf.Scalar;
}
