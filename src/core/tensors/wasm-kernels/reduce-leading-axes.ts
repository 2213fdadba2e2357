import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput, release, runWasmKernel } from './kernel-calls';
import { runShippedKernel } from './shipped';

/**
 * Sum and Mean over leading axes (a BatchNorm's [batch, height, width] of an NHWC tensor).
 * tfjs-backend-wasm transposes the whole input to put the reduced axes last before reducing,
 * which made Sum and Mean 15–20% of a ResNet-20 training step. Here the reduced rows are
 * averaged in blocks of up to BLOCK_ROWS rows by XNNPACK's average pooling (SIMD, one pass over
 * memory, float32 within a block), and the block means and leftover rows are added up in float64
 * in JavaScript. Other axis sets and dtypes run the shipped kernel.
 */
const BLOCK_ROWS = 1024;
/** Below this many elements a plain JavaScript pass is as fast as a pooling call. */
const POOL_MIN_ELEMENTS = 16384;

function leadingCount(axes: number[]): number {
  const sorted = [...axes].sort((a, b) => a - b);
  return sorted.every((axis, i) => axis === i) ? sorted.length : -1;
}

function reduceLeading(kernelName: string, divide: boolean) {
  return (args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo => {
    const { backend } = args;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const x = kernelInput(args.inputs, 'x', kernelName);
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const leading = leadingCount(axes);
    // All axes, or none, or not a leading run, or not float32: the shipped kernel does it well.
    if (x.dtype !== 'float32' || leading <= 0 || leading === x.shape.length) return runShippedKernel(kernelName, args);
    const outer = x.shape.slice(0, leading).reduce((a, b) => a * b, 1);
    const innerShape = x.shape.slice(leading);
    const inner = innerShape.reduce((a, b) => a * b, 1);
    const outShape = keepDims ? [...x.shape.slice(0, leading).map(() => 1), ...innerShape] : innerShape;

    const intermediates: tf.TensorInfo[] = [];
    try {
      // Rows [0, blocks·blockRows) are pooled; the rest are added in JavaScript.
      let blocks = 0;
      let blockRows = 1;
      let pooled: tf.TensorInfo | undefined;
      if (outer >= 2 && outer * inner >= POOL_MIN_ELEMENTS) {
        blockRows = Math.min(outer, BLOCK_ROWS);
        blocks = Math.floor(outer / blockRows);
        const rows = runWasmKernel(backend, tf.Reshape, { x }, { shape: [1, outer, 1, inner] });
        intermediates.push(rows);
        pooled = runWasmKernel(backend, tf.AvgPool, { x: rows }, { filterSize: [blockRows, 1], strides: [blockRows, 1], pad: 'valid' });
        intermediates.push(pooled);
      }
      // Allocate before taking views: growing the heap would detach views taken earlier.
      const out = backend.makeOutput(outShape, 'float32');
      const result = backend.typedArrayFromHeap(out) as Float32Array;
      const values = backend.typedArrayFromHeap(x) as Float32Array;
      const acc = new Float64Array(inner);
      if (pooled !== undefined) {
        const means = backend.typedArrayFromHeap(pooled) as Float32Array;
        for (let k = 0; k < blocks; k++) {
          const base = k * inner;
          for (let j = 0; j < inner; j++) acc[j] += means[base + j];
        }
        for (let j = 0; j < inner; j++) acc[j] *= blockRows;
      }
      for (let i = blocks * blockRows; i < outer; i++) {
        const base = i * inner;
        for (let j = 0; j < inner; j++) acc[j] += values[base + j];
      }
      for (let j = 0; j < inner; j++) result[j] = divide ? acc[j] / outer : acc[j];
      return out;
    } finally {
      for (const t of intermediates) release(backend, t);
    }
  };
}

export const sumLeadingAxesConfig: tf.KernelConfig = {
  kernelName: tf.Sum,
  backendName: 'wasm',
  kernelFunc: reduceLeading(tf.Sum, false) as unknown as tf.KernelFunc,
};

export const meanLeadingAxesConfig: tf.KernelConfig = {
  kernelName: tf.Mean,
  backendName: 'wasm',
  kernelFunc: reduceLeading(tf.Mean, true) as unknown as tf.KernelFunc,
};
