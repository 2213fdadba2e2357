import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { kernelInput } from '../kernel-calls';
import { int32Uniforms } from './conv-uniforms';
import { reshapeReleasing } from './reshape';
import { shippedWebgpuKernelFunc } from './shipped';

/**
 * Sum and Mean over leading axes on webgpu: x viewed as [rows, cols] and reduced over its rows, as
 * every per-channel statistic of an NHWC tensor is (BatchNorm's moments and their gradients, axes
 * [0, 1, 2]).
 *
 * tfjs-backend-webgpu 4.22 reduces only innermost axes: it transposes x to [cols, rows] first (a full
 * copy) and then gives each output one workgroup, so a 64-channel reduction keeps 64 workgroups busy
 * on a GPU with more than a hundred multiprocessors. Here no copy is made:
 *   1. partial[s, c] = Σ x[r, c] over slice s of the rows, a workgroup per (slice, 64 columns), 4
 *      rows in flight per column; the slices are chosen so there are enough workgroups;
 *   2. out[c] = scale · Σ_s partial[s, c], a workgroup of 256 threads per column.
 * Other reductions (innermost or all axes, non-float32) run the shipped kernel.
 */

export const COLUMNS_PER_WORKGROUP = 64;
export const ROW_PHASES = 4;
/** At most this many slices: the second pass then reads at most 4 partials per thread. */
const MAX_SLICES = 1024;
/** Rows per slice below which slicing further costs more than it spreads. */
const MIN_ROWS_PER_SLICE = 64;
export const TOTAL_THREADS = 256;

export interface LeadingReduction {
  rows: number;
  cols: number;
}

/**
 * The [rows, cols] view when `axes` are exactly the leading axes of a tensor of `shape` (some but not
 * all of them); undefined otherwise.
 */
export function leadingReduction(shape: number[], axes: number[]): LeadingReduction | undefined {
  const sorted = [...new Set(axes)].sort((a, b) => a - b);
  if (sorted.length === 0 || sorted.length >= shape.length) return undefined;
  if (sorted.some((axis, i) => axis !== i)) return undefined;
  const rows = tf.util.sizeFromShape(shape.slice(0, sorted.length));
  const cols = tf.util.sizeFromShape(shape.slice(sorted.length));
  return rows > 0 && cols > 0 ? { rows, cols } : undefined;
}

/** Slices of the rows for the first pass. */
export function rowSlices(rows: number): { slices: number; rowsPerSlice: number } {
  const slices = Math.max(1, Math.min(MAX_SLICES, Math.floor(rows / MIN_ROWS_PER_SLICE)));
  const rowsPerSlice = Math.ceil(rows / slices);
  return { slices: Math.ceil(rows / rowsPerSlice), rowsPerSlice };
}

/** WGSL of a RowSliceProgram: its column and the slice's rows [start, end), this thread's phase ty. */
export const ROW_SLICE_COORDINATES = `
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let col = i32(workgroupId.x) * ${COLUMNS_PER_WORKGROUP} + tx;
        let slice = i32(workgroupId.y);
        let start = slice * uniforms.rowsPerSlice;
        let end = min(start + uniforms.rowsPerSlice, uniforms.rows);`;

/**
 * A first pass over x viewed as [rows, cols]: a workgroup per (slice of the rows, 64 columns), 4
 * rows in flight per column; the output is [slices, valuesPerColumn · cols].
 */
export abstract class RowSliceProgram implements WebGPUProgram {
  outputShape: number[];
  abstract shaderKey: string;
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number];
  variableNames = ['x'];
  uniforms = 'rows : i32, cols : i32, rowsPerSlice : i32,';
  workgroupSize: [number, number, number] = [COLUMNS_PER_WORKGROUP, ROW_PHASES, 1];

  constructor(slices: number, cols: number, valuesPerColumn = 1) {
    this.outputShape = [slices, valuesPerColumn * cols];
    this.dispatch = [Math.ceil(cols / COLUMNS_PER_WORKGROUP), slices, 1];
  }

  abstract getUserCode(): string;
}

/** partial [slices, cols]. */
class ColumnPartialSumProgram extends RowSliceProgram {
  shaderKey = 'condense_column_partial_sum';

  getUserCode(): string {
    return `
      var<workgroup> phaseSums : array<f32, ${COLUMNS_PER_WORKGROUP * ROW_PHASES}>;

      fn main() {
        ${ROW_SLICE_COORDINATES}
        var total = 0.0;
        if (col < uniforms.cols) {
          for (var r = start + ty; r < end; r += ${ROW_PHASES}) {
            total += x[r * uniforms.cols + col];
          }
        }
        phaseSums[ty * ${COLUMNS_PER_WORKGROUP} + tx] = total;
        workgroupBarrier();
        if (ty == 0 && col < uniforms.cols) {
          var sum = phaseSums[tx];
          for (var p = 1; p < ${ROW_PHASES}; p++) {
            sum += phaseSums[p * ${COLUMNS_PER_WORKGROUP} + tx];
          }
          result[slice * uniforms.cols + col] = sum;
        }
      }
    `;
  }
}

/** out [cols] = scale · Σ_s partial[s, cols]: a workgroup per column, a tree over its threads. */
class ColumnTotalProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = 'condense_column_total';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  variableNames = ['partial'];
  uniforms = 'slices : i32, cols : i32, scale : f32,';
  workgroupSize: [number, number, number] = [TOTAL_THREADS, 1, 1];

  constructor(cols: number) {
    this.outputShape = [cols];
    // One workgroup per column; the backend folds more than 65,535 into y (and z).
    this.dispatch = [cols, 1, 1];
  }

  getUserCode(): string {
    return `
      var<workgroup> sums : array<f32, ${TOTAL_THREADS}>;

      // A flat dispatch layout: the backend passes the global index, unused here.
      fn main(globalIndex : i32) {
        let t = i32(localId.x);
        let col = i32((workgroupId.z * numWorkgroups.y + workgroupId.y) * numWorkgroups.x + workgroupId.x);
        var total = 0.0;
        if (col < uniforms.cols) {
          for (var s = t; s < uniforms.slices; s += ${TOTAL_THREADS}) {
            total += partial[s * uniforms.cols + col];
          }
        }
        sums[t] = total;
        workgroupBarrier();
        for (var width = ${TOTAL_THREADS / 2}; width > 0; width = width / 2) {
          if (t < width) {
            sums[t] += sums[t + width];
          }
          workgroupBarrier();
        }
        if (t == 0 && col < uniforms.cols) {
          result[col] = sums[0] * uniforms.scale;
        }
      }
    `;
  }
}

interface ReduceAttrs {
  axis: number | number[];
  keepDims: boolean;
}

function reduceLeading(kind: 'Sum' | 'Mean') {
  return (args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: ReduceAttrs }): tf.TensorInfo => {
    const { backend, attrs } = args;
    const x = kernelInput(args.inputs, 'x', kind);
    const axes = tf.util.parseAxisParam(attrs.axis, x.shape);
    const view = x.dtype === 'float32' ? leadingReduction(x.shape, axes) : undefined;
    if (view === undefined) return shippedWebgpuKernelFunc(kind)(args as never) as tf.TensorInfo;
    const { slices, rowsPerSlice } = rowSlices(view.rows);
    const partial = backend.runWebGPUProgram(new ColumnPartialSumProgram(slices, view.cols), [x], 'float32', int32Uniforms([view.rows, view.cols, rowsPerSlice]));
    const total = backend.runWebGPUProgram(new ColumnTotalProgram(view.cols), [partial], 'float32', [
      ...int32Uniforms([slices, view.cols]),
      { type: 'float32', data: [kind === 'Mean' ? 1 / view.rows : 1] },
    ]);
    backend.disposeData(partial.dataId);
    const [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
    return reshapeReleasing(backend, total, attrs.keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape);
  };
}

export const sumConfig: tf.KernelConfig = { kernelName: tf.Sum, backendName: 'webgpu', kernelFunc: reduceLeading('Sum') as unknown as tf.KernelFunc };
export const meanConfig: tf.KernelConfig = { kernelName: tf.Mean, backendName: 'webgpu', kernelFunc: reduceLeading('Mean') as unknown as tf.KernelFunc };
