import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import {
  BN_STATISTICS_GRAD_KERNEL,
  CHANNEL_MOMENTS_KERNEL,
  STATISTIC_GAP_NORMS_KERNEL,
  type BnStatisticsGradAttrs,
} from '../bn-statistics-kernels';
import { kernelInput } from '../kernel-calls';
import { columnReduction } from './reduce-leading-axes';

/**
 * The feature-statistics loss kernels (bn-statistics-kernels.ts) on webgpu: per BatchNorm layer
 * four programs for the moments, one for both norms and one for the gradient, where the loss
 * composed from tfjs ops runs about 24.
 */

const NORM_THREADS = 256;

/** Both norms of the statistic gaps over C channels in one workgroup. */
class StatisticGapNormsProgram implements WebGPUProgram {
  outputShape = [2];
  shaderKey = 'condense_statistic_gap_norms';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number] = [1, 1, 1];
  variableNames = ['moments', 'movingMean', 'movingVariance'];
  uniforms = 'channels : i32,';
  workgroupSize: [number, number, number] = [NORM_THREADS, 1, 1];

  getUserCode(): string {
    return `
      var<workgroup> meanSquares : array<f32, ${NORM_THREADS}>;
      var<workgroup> varianceSquares : array<f32, ${NORM_THREADS}>;

      fn main(globalIndex : i32) {
        let t = i32(localId.x);
        var meanTotal = 0.0;
        var varianceTotal = 0.0;
        for (var c = t; c < uniforms.channels; c += ${NORM_THREADS}) {
          let meanGap = moments[c] - movingMean[c];
          let varianceGap = moments[uniforms.channels + c] - movingVariance[c];
          meanTotal += meanGap * meanGap;
          varianceTotal += varianceGap * varianceGap;
        }
        meanSquares[t] = meanTotal;
        varianceSquares[t] = varianceTotal;
        workgroupBarrier();
        for (var width = ${NORM_THREADS / 2}; width > 0; width = width / 2) {
          if (t < width) {
            meanSquares[t] += meanSquares[t + width];
            varianceSquares[t] += varianceSquares[t + width];
          }
          workgroupBarrier();
        }
        if (t == 0) {
          result[0] = sqrt(meanSquares[0]);
          result[1] = sqrt(varianceSquares[0]);
        }
      }
    `;
  }
}

/** dx, one thread per element of x. */
class BnStatisticsGradProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = 'condense_bn_statistics_grad';
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames = ['x', 'moments', 'movingMean', 'movingVariance', 'norms', 'dy'];
  uniforms = 'channels : i32, scale : f32, normFloor : f32,';
  workgroupSize: [number, number, number] = [64, 1, 1];
  size = true;

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    // One-dimensional; the backend folds it into y (and z) beyond the per-dimension limit.
    this.dispatch = [Math.ceil(tf.util.sizeFromShape(shape) / 64), 1, 1];
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let c = index % uniforms.channels;
          let s = dy[0] * uniforms.scale;
          let mean = moments[c];
          let meanTerm = s * (mean - movingMean[c]) / max(norms[0], uniforms.normFloor);
          let varianceTerm = 2.0 * s * (moments[uniforms.channels + c] - movingVariance[c]) / max(norms[1], uniforms.normFloor);
          setOutputAtIndex(index, meanTerm + varianceTerm * (x[index] - mean));
        }
      }
    `;
  }
}

type Args = { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: tf.NamedAttrMap };

function channelView(x: tf.TensorInfo, kernelName: string): { rows: number; cols: number } {
  if (x.dtype !== 'float32') throw new Error(`${kernelName}: x is ${x.dtype}, not float32`);
  if (x.shape.length < 2) throw new Error(`${kernelName}: x has shape ${JSON.stringify(x.shape)}; it needs a channel axis and at least one other`);
  const cols = x.shape[x.shape.length - 1];
  const rows = tf.util.sizeFromShape(x.shape) / cols;
  if (rows === 0 || cols === 0) throw new Error(`${kernelName}: x has shape ${JSON.stringify(x.shape)}, with no values`);
  return { rows, cols };
}

function checkChannels(t: tf.TensorInfo, channels: number, name: string, kernelName: string): void {
  const size = tf.util.sizeFromShape(t.shape);
  if (size !== channels) throw new Error(`${kernelName}: ${name} has ${size} values for ${channels} channels`);
}

function channelMoments({ inputs, backend }: Args): tf.TensorInfo {
  const x = kernelInput(inputs, 'x', CHANNEL_MOMENTS_KERNEL);
  const view = channelView(x, CHANNEL_MOMENTS_KERNEL);
  const mean = columnReduction(backend, x, view, 1 / view.rows);
  try {
    return columnReduction(backend, x, view, 1 / view.rows, mean);
  } finally {
    backend.disposeData(mean.dataId);
  }
}

function statisticGapNorms({ inputs, backend }: Args): tf.TensorInfo {
  const moments = kernelInput(inputs, 'moments', STATISTIC_GAP_NORMS_KERNEL);
  const movingMean = kernelInput(inputs, 'movingMean', STATISTIC_GAP_NORMS_KERNEL);
  const movingVariance = kernelInput(inputs, 'movingVariance', STATISTIC_GAP_NORMS_KERNEL);
  const channels = tf.util.sizeFromShape(moments.shape) / 2;
  checkChannels(movingMean, channels, 'movingMean', STATISTIC_GAP_NORMS_KERNEL);
  checkChannels(movingVariance, channels, 'movingVariance', STATISTIC_GAP_NORMS_KERNEL);
  return backend.runWebGPUProgram(new StatisticGapNormsProgram(), [moments, movingMean, movingVariance], 'float32', [{ type: 'int32', data: [channels] }]);
}

function bnStatisticsGrad({ inputs, backend, attrs }: Args): tf.TensorInfo {
  const name = BN_STATISTICS_GRAD_KERNEL;
  const x = kernelInput(inputs, 'x', name);
  const { cols } = channelView(x, name);
  const moments = kernelInput(inputs, 'moments', name);
  const movingMean = kernelInput(inputs, 'movingMean', name);
  const movingVariance = kernelInput(inputs, 'movingVariance', name);
  const norms = kernelInput(inputs, 'norms', name);
  const dy = kernelInput(inputs, 'dy', name);
  checkChannels(moments, 2 * cols, 'moments', name);
  checkChannels(movingMean, cols, 'movingMean', name);
  checkChannels(movingVariance, cols, 'movingVariance', name);
  checkChannels(norms, 2, 'norms', name);
  checkChannels(dy, 1, 'dy', name);
  const { scale, normFloor } = attrs as unknown as BnStatisticsGradAttrs;
  return backend.runWebGPUProgram(new BnStatisticsGradProgram(x.shape), [x, moments, movingMean, movingVariance, norms, dy], 'float32', [
    { type: 'int32', data: [cols] },
    { type: 'float32', data: [scale] },
    { type: 'float32', data: [normFloor] },
  ]);
}

const config = (kernelName: string, kernelFunc: (args: Args) => tf.TensorInfo): tf.KernelConfig => ({
  kernelName,
  backendName: 'webgpu',
  kernelFunc: kernelFunc as unknown as tf.KernelFunc,
});

export const BN_STATISTICS_WEBGPU_KERNELS: readonly tf.KernelConfig[] = [
  config(CHANNEL_MOMENTS_KERNEL, channelMoments),
  config(STATISTIC_GAP_NORMS_KERNEL, statisticGapNorms),
  config(BN_STATISTICS_GRAD_KERNEL, bnStatisticsGrad),
];
