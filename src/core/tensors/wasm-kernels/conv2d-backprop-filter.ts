import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Conv2DBackpropFilterAttrs, filterGradientCall } from '../conv-gradient-info';
import { release, runWasmKernel } from './kernel-calls';

/**
 * dW[kh,kw,ci,co] = Σ_{b,oh,ow} x[b, oh·s + kh·d − padTop, ow·s + kw·d − padLeft, ci] · dy[b,oh,ow,co].
 *
 * Two exact ways, chosen per shape (`useSwappedConv`): matrix products of im2col patches with dy,
 * one per group of images that fits in cache (`im2colFilterGradient`), or one XNNPACK conv with the
 * batch and channel roles swapped (`swappedConvFilterGradient`). Both are tested on every case.
 */
function conv2DBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: Conv2DBackpropFilterAttrs }): tf.TensorInfo {
  const { backend, attrs } = args;
  const { x, dy, info } = filterGradientCall('wasm', args.inputs, attrs);
  return useSwappedConv(info) ? swappedConvFilterGradient(backend, x, dy, info) : im2colFilterGradient(backend, x, dy, info);
}

/**
 * The swapped conv wins only where im2col's extra columns cost more than its packing and streaming
 * of dy: stride 1 with dy's rows padded by a fifth or more (ResNet's 8×8 maps, LeNet's 5×5 valid
 * conv). Measured with bench/filter-grad-kernels.ts.
 */
export function useSwappedConv(info: tf.backend_util.Conv2DInfo): boolean {
  if (info.strideHeight !== 1 || info.strideWidth !== 1) return false;
  const planeWidth = info.outWidth + (info.filterWidth - 1) * info.dilationWidth;
  return planeWidth >= 1.2 * info.outWidth;
}

/** Rows and columns of x, after its top/left padding, that the gradient reads. */
function neededInput(info: tf.backend_util.Conv2DInfo): { height: number; width: number } {
  return {
    height: (info.filterHeight - 1) * info.dilationHeight + (info.outHeight - 1) * info.strideHeight + 1,
    width: (info.filterWidth - 1) * info.dilationWidth + (info.outWidth - 1) * info.strideWidth + 1,
  };
}

/** Image positions per matrix product: a group's patches then stay in cache (bench/filter-grad-kernels.ts). */
export const IM2COL_COLUMNS = { target: 4096 };

/**
 * dW[(kh,kw,ci), co] = Σ_groups Pᵀ[(kh,kw,ci), p] · dy[p, co], p over the positions of a group of
 * images; each product is one XNNPACK fully-connected call, [KH·KW·CI, p] by [p, CO] (the shipped
 * kernel packs its second operand, so the smaller one, dy, goes there).
 *
 * Pᵀ is copied in runs from x split by stride phase: with s·q + ρ the padded row, plane (n, ρh, ρw,
 * ci) holds x[n, s·q + ρ, ...] channel-major, [Hq, Wq], so tap (kh, kw) — kh·d = s·qh + ρh — reads
 * rows oh + qh of plane ρh: one run of OH·Wq values from qh·Wq + qw. Each run carries Wq − OW extra
 * columns (x of the next row, or zeros past the plane's end) that meet zero columns added to dy, so
 * they add nothing (for finite x).
 */
export function im2colFilterGradient(backend: BackendWasm, x: tf.TensorInfo, dy: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const { batchSize: batch, inChannels, outChannels, outHeight, outWidth, filterHeight, filterWidth } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const [, inHeight, inWidth] = x.shape;
  const planeHeight = outHeight + Math.floor(((filterHeight - 1) * dh) / sh);
  const planeWidth = outWidth + Math.floor(((filterWidth - 1) * dw) / sw);
  const plane = planeHeight * planeWidth;
  const intermediates: tf.TensorInfo[] = [];
  const keep = (t: tf.TensorInfo) => {
    intermediates.push(t);
    return t;
  };
  try {
    // x cropped or zero-padded to [N, Hq·sh, Wq·sw, CI] (padding NHWC: one run per image row) ...
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    const keptHeight = Math.min(inHeight, planeHeight * sh - top);
    const keptWidth = Math.min(inWidth, planeWidth * sw - left);
    let xs = x;
    if (keptHeight < inHeight || keptWidth < inWidth) {
      xs = keep(runWasmKernel(backend, tf.Slice, { x }, { begin: [0, 0, 0, 0], size: [batch, keptHeight, keptWidth, inChannels] }));
    }
    const bottom = planeHeight * sh - top - keptHeight;
    const right = planeWidth * sw - left - keptWidth;
    if (top > 0 || left > 0 || bottom > 0 || right > 0) {
      xs = keep(runWasmKernel(backend, tf.PadV2, { x: xs }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 }));
    }
    // ... then split into planes [N, ρh, ρw, CI, Hq·Wq] by two transposes of rank ≤ 4 (wasm's
    // Transpose of rank 5 and 6 is a slow generic loop).
    if (sh > 1) {
      const rows = keep(runWasmKernel(backend, tf.Reshape, { x: xs }, { shape: [batch, planeHeight, sh, planeWidth * sw * inChannels] }));
      xs = keep(runWasmKernel(backend, tf.Transpose, { x: rows }, { perm: [0, 2, 1, 3] }));
    }
    const columns = keep(runWasmKernel(backend, tf.Reshape, { x: xs }, { shape: [batch * sh, plane, sw, inChannels] }));
    const planes = keep(runWasmKernel(backend, tf.Transpose, { x: columns }, { perm: [0, 2, 3, 1] }));

    const imageColumns = outHeight * planeWidth;
    const taps = filterHeight * filterWidth * inChannels;
    const group = Math.max(1, Math.min(batch, Math.round(IM2COL_COLUMNS.target / imageColumns)));
    const sum = new Float64Array(taps * outChannels);
    for (let n0 = 0; n0 < batch; n0 += group) {
      const images = Math.min(group, batch - n0);
      const groupColumns = images * imageColumns;
      const patches = keep(backend.makeOutput([taps, groupColumns], 'float32'));
      const dyGroup = keep(backend.makeOutput([groupColumns, outChannels], 'float32'));
      // Views after every allocation: growing the heap detaches views taken earlier.
      // Patches and planes both live on the wasm heap: copyWithin on one view of it, without a
      // subarray per run (runs are short on small maps).
      const heap = new Float32Array((backend.typedArrayFromHeap(patches) as Float32Array).buffer);
      const patchesAt = (backend.typedArrayFromHeap(patches) as Float32Array).byteOffset / 4;
      const planesAt = (backend.typedArrayFromHeap(planes) as Float32Array).byteOffset / 4;
      for (let kh = 0; kh < filterHeight; kh++) {
        const rh = (kh * dh) % sh;
        const qh = Math.floor((kh * dh) / sh);
        for (let kw = 0; kw < filterWidth; kw++) {
          const rw = (kw * dw) % sw;
          const offset = qh * planeWidth + Math.floor((kw * dw) / sw);
          const length = Math.min(imageColumns, plane - offset);
          for (let ci = 0; ci < inChannels; ci++) {
            let to = patchesAt + ((kh * filterWidth + kw) * inChannels + ci) * groupColumns;
            for (let n = n0; n < n0 + images; n++, to += imageColumns) {
              const from = planesAt + (((n * sh + rh) * sw + rw) * inChannels + ci) * plane + offset;
              heap.copyWithin(to, from, from + length);
              if (length < imageColumns) heap.fill(0, to + length, to + imageColumns);
            }
          }
        }
      }
      // dy's rows, each followed by Wq − OW zero columns.
      const d = backend.typedArrayFromHeap(dyGroup) as Float32Array;
      const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
      const dyRow = outWidth * outChannels;
      if (planeWidth === outWidth) d.set(dyv.subarray(n0 * outHeight * dyRow, (n0 + images) * outHeight * dyRow));
      else {
        d.fill(0);
        for (let r = 0; r < images * outHeight; r++) {
          const from = (n0 * outHeight + r) * dyRow;
          d.set(dyv.subarray(from, from + dyRow), r * planeWidth * outChannels);
        }
      }
      const product = runWasmKernel(backend, tf.BatchMatMul, { a: patches, b: dyGroup }, { transposeA: false, transposeB: false });
      const values = backend.typedArrayFromHeap(product) as Float32Array;
      for (let i = 0; i < values.length; i++) sum[i] += values[i];
      release(backend, product);
      intermediates.splice(intermediates.length - 2, 2);
      release(backend, patches);
      release(backend, dyGroup);
    }
    return backend.makeOutput(info.filterShape, 'float32', undefined, Float32Array.from(sum));
  } finally {
    for (const t of intermediates) release(backend, t);
  }
}

/**
 * Read with ci as the batch and b as the channels, dW is a convolution of x transposed to
 * [ci,H,W,b] with dy transposed to [oh,ow,b,co] as the filter, stride = the forward dilation d
 * and dilation = the forward stride s; its output [ci,KH,KW,co] is dW transposed. The forward
 * conv's top/left padding is kept and the bottom/right edge is padded or cropped so that exactly
 * KH×KW outputs come out. One XNNPACK conv, but with an OH×OW×N "filter" it packs and streams
 * from memory for every few outputs.
 */
export function swappedConvFilterGradient(backend: BackendWasm, x: tf.TensorInfo, dy: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const [batch, inHeight, inWidth, inChannels] = x.shape;
  const needed = neededInput(info);
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const keptHeight = Math.min(inHeight, needed.height - padTop);
  const keptWidth = Math.min(inWidth, needed.width - padLeft);
  const padBottom = needed.height - padTop - keptHeight;
  const padRight = needed.width - padLeft - keptWidth;

  const intermediates: tf.TensorInfo[] = [];
  try {
    let xUsed = x;
    if (keptHeight < inHeight || keptWidth < inWidth) {
      xUsed = runWasmKernel(backend, tf.Slice, { x }, { begin: [0, 0, 0, 0], size: [batch, keptHeight, keptWidth, inChannels] });
      intermediates.push(xUsed);
    }
    const xT = runWasmKernel(backend, tf.Transpose, { x: xUsed }, { perm: [3, 1, 2, 0] });
    intermediates.push(xT);
    const dyT = runWasmKernel(backend, tf.Transpose, { x: dy }, { perm: [1, 2, 0, 3] });
    intermediates.push(dyT);
    const gradT = runWasmKernel(
      backend,
      tf.Conv2D,
      { x: xT, filter: dyT },
      {
        strides: [info.dilationHeight, info.dilationWidth],
        dilations: [info.strideHeight, info.strideWidth],
        pad: [
          [0, 0],
          [padTop, padBottom],
          [padLeft, padRight],
          [0, 0],
        ],
        dataFormat: 'NHWC',
      },
    );
    intermediates.push(gradT);
    return runWasmKernel(backend, tf.Transpose, { x: gradT }, { perm: [1, 2, 0, 3] });
  } finally {
    for (const t of intermediates) release(backend, t);
  }
}

export const conv2DBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter as unknown as tf.KernelFunc,
};
