import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput } from './kernel-calls';
import { runShippedKernel } from './shipped';

/**
 * Sum and Mean over leading axes (a BatchNorm's [batch, height, width] of an NHWC tensor) in
 * JavaScript over the wasm heap, accumulating in float64 as the cpu backend does. tfjs-backend-wasm
 * transposes the whole input to put the reduced axes last before reducing, which made Sum and Mean
 * 15–20% of a ResNet-20 training step. Other axis sets and dtypes run the shipped kernel.
 */
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
    // Allocate first: growing the heap would detach views taken before.
    const out = backend.makeOutput(outShape, 'float32');
    const result = backend.typedArrayFromHeap(out) as Float32Array;
    const values = backend.typedArrayFromHeap(x) as Float32Array;
    const acc = new Float64Array(inner);
    for (let i = 0; i < outer; i++) {
      const base = i * inner;
      for (let j = 0; j < inner; j++) acc[j] += values[base + j];
    }
    const scale = divide ? 1 / outer : 1;
    for (let j = 0; j < inner; j++) result[j] = divide ? acc[j] * scale : acc[j];
    return out;
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
