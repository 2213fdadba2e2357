import * as tf from '@tensorflow/tfjs';
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import {
  BN_STATISTICS_GRAD_KERNEL,
  CHANNEL_MOMENTS_KERNEL,
  STATISTIC_GAP_NORMS_KERNEL,
  type BnStatisticsGradAttrs,
} from '../bn-statistics-kernels';
import { kernelInput } from '../kernel-calls';
import { webgpuKernelConfig, type WebgpuKernelArgs } from './kernel-config';
import { PerElementProgram } from './per-element-program';
import { int32Uniforms } from './conv-uniforms';
import { COLUMNS_PER_WORKGROUP, ROW_PHASES, ROW_SLICE_COORDINATES, RowSliceProgram, rowSlices, TOTAL_THREADS } from './reduce-leading-axes';

/**
 * The feature-statistics loss kernels (bn-statistics-kernels.ts) on webgpu: per BatchNorm layer
 * two programs for the moments, one for both norms and one for the gradient, where the loss
 * composed from tfjs ops runs about 24.
 *
 * Moments in one read of x, split as Sum/Mean over leading axes are (reduce-leading-axes.ts): each
 * thread keeps Welford's running mean and M2 = Σ(x − mean)² over its rows, and partial results merge
 * with Chan et al.'s pairwise update (n = nA + nB, δ = meanB − meanA, mean = meanA + δ·nB/n,
 * M2 = M2A + M2B + δ²·nA·nB/n), which stays accurate where Σx² − n·mean² would cancel.
 */

/** WGSL: merges (nB, meanB, m2B) into the running (n, mean, m2); nothing when nB is 0. */
const CHAN_MERGE = `
  fn chanMerge(state : vec3<f32>, nB : f32, meanB : f32, m2B : f32) -> vec3<f32> {
    if (nB == 0.0) {
      return state;
    }
    let n = state.x + nB;
    let delta = meanB - state.y;
    return vec3<f32>(n, state.y + delta * nB / n, state.z + m2B + delta * delta * state.x * nB / n);
  }
`;

/** partial [slices, 2·cols]: per slice of rows and column, the mean (first cols) and M2 (next cols). */
class SliceMomentsProgram extends RowSliceProgram {
  shaderKey = 'condense_slice_moments';

  constructor(slices: number, cols: number) {
    super(slices, cols, 2);
  }

  getUserCode(): string {
    const lanes = COLUMNS_PER_WORKGROUP * ROW_PHASES;
    return `
      var<workgroup> phaseCounts : array<f32, ${lanes}>;
      var<workgroup> phaseMeans : array<f32, ${lanes}>;
      var<workgroup> phaseM2s : array<f32, ${lanes}>;
      ${CHAN_MERGE}
      fn main() {
        ${ROW_SLICE_COORDINATES}
        var n = 0.0;
        var mean = 0.0;
        var m2 = 0.0;
        if (col < uniforms.cols) {
          for (var r = start + ty; r < end; r += ${ROW_PHASES}) {
            let v = x[r * uniforms.cols + col];
            n += 1.0;
            let delta = v - mean;
            mean += delta / n;
            m2 += delta * (v - mean);
          }
        }
        let lane = ty * ${COLUMNS_PER_WORKGROUP} + tx;
        phaseCounts[lane] = n;
        phaseMeans[lane] = mean;
        phaseM2s[lane] = m2;
        workgroupBarrier();
        if (ty == 0 && col < uniforms.cols) {
          var state = vec3<f32>(n, mean, m2);
          for (var p = 1; p < ${ROW_PHASES}; p++) {
            let other = p * ${COLUMNS_PER_WORKGROUP} + tx;
            state = chanMerge(state, phaseCounts[other], phaseMeans[other], phaseM2s[other]);
          }
          result[slice * 2 * uniforms.cols + col] = state.y;
          result[slice * 2 * uniforms.cols + uniforms.cols + col] = state.z;
        }
      }
    `;
  }
}

/** out [2, cols]: the mean and the biased variance M2/rows, merging the slices; a workgroup per column. */
class MergeMomentsProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = 'condense_merge_moments';
  dispatchLayout = { x: [0, 1] };
  dispatch: [number, number, number];
  variableNames = ['partial'];
  uniforms = 'slices : i32, cols : i32, rows : i32, rowsPerSlice : i32,';
  workgroupSize: [number, number, number] = [TOTAL_THREADS, 1, 1];

  constructor(cols: number) {
    this.outputShape = [2, cols];
    // One workgroup per column; the backend folds more than 65,535 into y (and z).
    this.dispatch = [cols, 1, 1];
  }

  getUserCode(): string {
    return `
      var<workgroup> counts : array<f32, ${TOTAL_THREADS}>;
      var<workgroup> means : array<f32, ${TOTAL_THREADS}>;
      var<workgroup> m2s : array<f32, ${TOTAL_THREADS}>;
      ${CHAN_MERGE}
      // A flat dispatch layout: the backend passes the global index, unused here.
      fn main(globalIndex : i32) {
        let t = i32(localId.x);
        let col = i32((workgroupId.z * numWorkgroups.y + workgroupId.y) * numWorkgroups.x + workgroupId.x);
        var state = vec3<f32>(0.0, 0.0, 0.0);
        if (col < uniforms.cols) {
          for (var s = t; s < uniforms.slices; s += ${TOTAL_THREADS}) {
            let rowsInSlice = f32(min(uniforms.rowsPerSlice, uniforms.rows - s * uniforms.rowsPerSlice));
            state = chanMerge(state, rowsInSlice, partial[s * 2 * uniforms.cols + col], partial[s * 2 * uniforms.cols + uniforms.cols + col]);
          }
        }
        counts[t] = state.x;
        means[t] = state.y;
        m2s[t] = state.z;
        workgroupBarrier();
        for (var width = ${TOTAL_THREADS / 2}; width > 0; width = width / 2) {
          if (t < width) {
            let merged = chanMerge(vec3<f32>(counts[t], means[t], m2s[t]), counts[t + width], means[t + width], m2s[t + width]);
            counts[t] = merged.x;
            means[t] = merged.y;
            m2s[t] = merged.z;
          }
          workgroupBarrier();
        }
        if (t == 0 && col < uniforms.cols) {
          result[col] = means[0];
          result[uniforms.cols + col] = m2s[0] / f32(uniforms.rows);
        }
      }
    `;
  }
}

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
class BnStatisticsGradProgram extends PerElementProgram {
  shaderKey = 'condense_bn_statistics_grad';
  variableNames = ['x', 'moments', 'movingMean', 'movingVariance', 'norms', 'dy'];
  uniforms = 'channels : i32, scale : f32, normFloor : f32,';

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

function channelMoments({ inputs, backend }: WebgpuKernelArgs): tf.TensorInfo {
  const x = kernelInput(inputs, 'x', CHANNEL_MOMENTS_KERNEL);
  const { rows, cols } = channelView(x, CHANNEL_MOMENTS_KERNEL);
  const { slices, rowsPerSlice } = rowSlices(rows);
  const partial = backend.runWebGPUProgram(new SliceMomentsProgram(slices, cols), [x], 'float32', int32Uniforms([rows, cols, rowsPerSlice]));
  try {
    return backend.runWebGPUProgram(new MergeMomentsProgram(cols), [partial], 'float32', int32Uniforms([slices, cols, rows, rowsPerSlice]));
  } finally {
    backend.disposeData(partial.dataId);
  }
}

function statisticGapNorms({ inputs, backend }: WebgpuKernelArgs): tf.TensorInfo {
  const moments = kernelInput(inputs, 'moments', STATISTIC_GAP_NORMS_KERNEL);
  const movingMean = kernelInput(inputs, 'movingMean', STATISTIC_GAP_NORMS_KERNEL);
  const movingVariance = kernelInput(inputs, 'movingVariance', STATISTIC_GAP_NORMS_KERNEL);
  const channels = tf.util.sizeFromShape(moments.shape) / 2;
  checkChannels(movingMean, channels, 'movingMean', STATISTIC_GAP_NORMS_KERNEL);
  checkChannels(movingVariance, channels, 'movingVariance', STATISTIC_GAP_NORMS_KERNEL);
  return backend.runWebGPUProgram(new StatisticGapNormsProgram(), [moments, movingMean, movingVariance], 'float32', [{ type: 'int32', data: [channels] }]);
}

function bnStatisticsGrad({ inputs, backend, attrs }: WebgpuKernelArgs): tf.TensorInfo {
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

export const BN_STATISTICS_WEBGPU_KERNELS: readonly tf.KernelConfig[] = [
  webgpuKernelConfig(CHANNEL_MOMENTS_KERNEL, channelMoments),
  webgpuKernelConfig(STATISTIC_GAP_NORMS_KERNEL, statisticGapNorms),
  webgpuKernelConfig(BN_STATISTICS_GRAD_KERNEL, bnStatisticsGrad),
];
