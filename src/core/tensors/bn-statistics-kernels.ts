import * as tf from '@tensorflow/tfjs';

/**
 * Kernels behind DeepInversion's feature-statistics loss (`bnStatisticsLoss` in bn-taps.ts), for
 * backends where one step is bound by kernel launches: composed from tfjs ops, the loss and its
 * gradient take about 24 GPU programs per BatchNorm layer, most of them on [C]-sized vectors. A
 * backend that registers all three runs the loss through them; elsewhere it is composed.
 *
 * `x` is a BatchNorm layer's input [..., C]; statistics are over every axis but the last, n values
 * per channel.
 */

/** inputs {x}; output [2, C]: row 0 the batch mean μ, row 1 the biased variance σ² (divided by n). */
export const CHANNEL_MOMENTS_KERNEL = 'CondenseChannelMoments';

/**
 * inputs {moments [2, C], movingMean [C], movingVariance [C]}; output [2]:
 * ‖μ − μ_running‖₂ and ‖σ² − σ²_running‖₂.
 */
export const STATISTIC_GAP_NORMS_KERNEL = 'CondenseStatisticGapNorms';

/**
 * inputs {x, moments, movingMean, movingVariance, norms, dy} (norms: the output above; dy: one
 * value), attrs {scale, normFloor}; output like x:
 *   dx = dy·scale·[(μ_c − μ_running,c)/max(‖dμ‖, floor) + 2·(x − μ_c)·(σ²_c − σ²_running,c)/max(‖dσ²‖, floor)],
 * the gradient of scale·n·(‖dμ‖ + ‖dσ²‖) with respect to x (scale = w_l/n for a layer weight w_l).
 */
export const BN_STATISTICS_GRAD_KERNEL = 'CondenseBnStatisticsGrad';

export const BN_STATISTICS_KERNELS = [CHANNEL_MOMENTS_KERNEL, STATISTIC_GAP_NORMS_KERNEL, BN_STATISTICS_GRAD_KERNEL] as const;

export interface BnStatisticsGradAttrs {
  scale: number;
  normFloor: number;
}

/** Whether the current backend has all three kernels. */
export function bnStatisticsKernelsRegistered(backendName: string = tf.getBackend()): boolean {
  return BN_STATISTICS_KERNELS.every((name) => tf.getKernel(name, backendName) !== undefined);
}
