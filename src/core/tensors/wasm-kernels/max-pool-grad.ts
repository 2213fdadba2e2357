import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput } from './kernel-calls';

interface MaxPoolGradAttrs {
  filterSize: [number, number] | number;
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/**
 * MaxPool's input gradient, written in JavaScript over the wasm heap: each output's dy goes to the
 * first maximum of its window in row-major window order, the rule of tfjs' cpu kernel (a value
 * must be strictly greater than the running maximum, which starts at −∞; a window of NaN/−∞ only
 * passes no gradient). Overlapping windows add up. One pass over NHWC memory with the channel
 * loop innermost; tfjs-backend-wasm's own kernel is several times slower.
 */
function maxPoolGrad(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: MaxPoolGradAttrs }): tf.TensorInfo {
  const { backend, attrs } = args;
  const dy = kernelInput(args.inputs, 'dy', tf.MaxPoolGrad);
  const input = kernelInput(args.inputs, 'input', tf.MaxPoolGrad);
  if (input.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error('wasm MaxPoolGrad supports float32 only');
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;

  // Allocate first: growing the heap would detach views taken before.
  const out = backend.makeOutput(input.shape, 'float32');
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  const x = backend.typedArrayFromHeap(input) as Float32Array;
  const g = backend.typedArrayFromHeap(dy) as Float32Array;
  dx.fill(0);

  scatterToFirstMax(x, g, dx, batchSize, inHeight, inWidth, channels, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth, padTop, padLeft);
  return out;
}

/** The loop, on plain numbers and arrays only so V8 keeps it monomorphic. */
function scatterToFirstMax(
  x: Float32Array,
  g: Float32Array,
  dx: Float32Array,
  batchSize: number,
  inHeight: number,
  inWidth: number,
  channels: number,
  outHeight: number,
  outWidth: number,
  strideHeight: number,
  strideWidth: number,
  filterHeight: number,
  filterWidth: number,
  padTop: number,
  padLeft: number,
): void {
  const rowStride = inWidth * channels;
  let dyAt = 0;
  for (let b = 0; b < batchSize; b++) {
    const xBatch = b * inHeight * rowStride;
    for (let oh = 0; oh < outHeight; oh++) {
      const rowStart = oh * strideHeight - padTop;
      const rowFrom = rowStart < 0 ? 0 : rowStart;
      const rowTo = rowStart + filterHeight > inHeight ? inHeight : rowStart + filterHeight;
      for (let ow = 0; ow < outWidth; ow++) {
        const colStart = ow * strideWidth - padLeft;
        const colFrom = colStart < 0 ? 0 : colStart;
        const colTo = colStart + filterWidth > inWidth ? inWidth : colStart + filterWidth;
        for (let d = 0; d < channels; d++, dyAt++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (let r = rowFrom; r < rowTo; r++) {
            let i = xBatch + r * rowStride + colFrom * channels + d;
            for (let c = colFrom; c < colTo; c++, i += channels) {
              const v = x[i];
              if (v > best) {
                best = v;
                at = i;
              }
            }
          }
          if (at >= 0) dx[at] += g[dyAt];
        }
      }
    }
  }
}

export const maxPoolGradConfig: tf.KernelConfig = {
  kernelName: tf.MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: maxPoolGrad as unknown as tf.KernelFunc,
};
