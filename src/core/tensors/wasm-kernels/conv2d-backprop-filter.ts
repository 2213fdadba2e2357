import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput, release, runWasmKernel } from './kernel-calls';

type Pair = [number, number];

interface Conv2DBackpropFilterAttrs {
  strides: Pair | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
  /** Not part of tfjs-core's attrs (its Conv2D gradient refuses dilation); honoured when given. */
  dilations?: Pair | number;
}

/**
 * dW[kh,kw,ci,co] = Σ_{b,oh,ow} x[b, oh·s + kh·d − padTop, ow·s + kw·d − padLeft, ci] · dy[b,oh,ow,co].
 *
 * Two exact ways, chosen per shape (see `useSwappedConv`): a matrix product of im2col patches with
 * dy, in groups of images that fit in cache (`im2colFilterGradient`), or one XNNPACK conv with the
 * batch and channel roles swapped (`swappedConvFilterGradient`).
 */
function conv2DBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: Conv2DBackpropFilterAttrs }): tf.TensorInfo {
  const { backend, attrs } = args;
  const x = kernelInput(args.inputs, 'x', tf.Conv2DBackpropFilter);
  const dy = kernelInput(args.inputs, 'dy', tf.Conv2DBackpropFilter);
  if (attrs.dataFormat !== 'NHWC') {
    throw new Error(`wasm Conv2DBackpropFilter supports dataFormat 'NHWC' only, got '${attrs.dataFormat}'`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  if (dy.shape[0] !== info.batchSize || dy.shape[1] !== info.outHeight || dy.shape[2] !== info.outWidth || dy.shape[3] !== info.outChannels) {
    throw new Error(`wasm Conv2DBackpropFilter: dy shape ${JSON.stringify(dy.shape)} does not match the conv output ${JSON.stringify(info.outShape)}`);
  }
  return useSwappedConv(info) ? swappedConvFilterGradient(backend, x, dy, info) : im2colFilterGradient(backend, x, dy, info);
}

/** Which formulation wins, from bench/filter-grad-kernels.ts. */
function useSwappedConv(info: tf.backend_util.Conv2DInfo): boolean {
  return false;
}

/** Rows and columns of x, after its top/left padding, that the gradient reads. */
function neededInput(info: tf.backend_util.Conv2DInfo): { height: number; width: number } {
  return {
    height: (info.filterHeight - 1) * info.dilationHeight + (info.outHeight - 1) * info.strideHeight + 1,
    width: (info.filterWidth - 1) * info.dilationWidth + (info.outWidth - 1) * info.strideWidth + 1,
  };
}

/**
 * x cropped to what the gradient reads and zero-padded around it, channel-major: [N, CI, height, width].
 * Pads on NHWC (one run per image row) before the transpose.
 */
function paddedChannelMajor(backend: BackendWasm, x: tf.TensorInfo, info: tf.backend_util.Conv2DInfo, height: number, width: number, keep: (t: tf.TensorInfo) => tf.TensorInfo): tf.TensorInfo {
  const [batch, inHeight, inWidth, inChannels] = x.shape;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const keptHeight = Math.min(inHeight, height - top);
  const keptWidth = Math.min(inWidth, width - left);
  let xs = x;
  if (keptHeight < inHeight || keptWidth < inWidth) {
    xs = keep(runWasmKernel(backend, tf.Slice, { x }, { begin: [0, 0, 0, 0], size: [batch, keptHeight, keptWidth, inChannels] }));
  }
  const bottom = height - top - keptHeight;
  const right = width - left - keptWidth;
  if (top > 0 || left > 0 || bottom > 0 || right > 0) {
    xs = keep(runWasmKernel(backend, tf.PadV2, { x: xs }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 }));
  }
  return keep(runWasmKernel(backend, tf.Transpose, { x: xs }, { perm: [0, 3, 1, 2] }));
}

/** Columns (image positions) per matrix product: the patches of a group then stay in cache. */
export const GROUP_COLUMNS = { target: 2048 };

/**
 * dW[(kh,kw,ci), co] = Σ_groups Pᵀ[(kh,kw,ci), p] · dy[p, co], p over the positions of a group of
 * images, each product one XNNPACK fully-connected call ([KH·KW·CI, p] by [p, CO]; the shipped
 * kernel packs its second operand, so the small one, dy, goes there). Pᵀ is written in JavaScript
 * from channel-major padded x: with stride 1, the row of tap (kh,kw) and channel ci is one run of
 * x's plane flattened, starting at kh·d·width + kw·d, if dy gets zero columns up to the padded
 * width (the run's extra columns, x's next row or past the plane's end, meet those zeros). With
 * a stride, rows are gathered element by element (their output planes are small).
 */
export function im2colFilterGradient(backend: BackendWasm, x: tf.TensorInfo, dy: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const { batchSize: batch, inChannels, outChannels, outHeight, outWidth, filterHeight, filterWidth } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const needed = neededInput(info);
  const runs = sh === 1 && sw === 1;
  const intermediates: tf.TensorInfo[] = [];
  const keep = (t: tf.TensorInfo) => {
    intermediates.push(t);
    return t;
  };
  try {
    const xT = paddedChannelMajor(backend, x, info, needed.height, needed.width, keep);
    const plane = needed.height * needed.width;
    // Columns per image: with runs, dy's rows are padded to x's padded width.
    const rowWidth = runs ? needed.width : outWidth;
    const imageColumns = outHeight * rowWidth;
    const taps = filterHeight * filterWidth * inChannels;
    const group = Math.max(1, Math.min(batch, Math.round(GROUP_COLUMNS.target / imageColumns)));
    const sum = new Float64Array(taps * outChannels);
    for (let n0 = 0; n0 < batch; n0 += group) {
      const images = Math.min(group, batch - n0);
      const columns = images * imageColumns;
      const patches = keep(backend.makeOutput([taps, columns], 'float32'));
      const dyGroup = keep(backend.makeOutput([columns, outChannels], 'float32'));
      // Views after every allocation: growing the heap detaches views taken earlier.
      const p = backend.typedArrayFromHeap(patches) as Float32Array;
      const d = backend.typedArrayFromHeap(dyGroup) as Float32Array;
      const xv = backend.typedArrayFromHeap(xT) as Float32Array;
      const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
      for (let kh = 0; kh < filterHeight; kh++) {
        for (let kw = 0; kw < filterWidth; kw++) {
          const offset = kh * dh * needed.width + kw * dw;
          for (let ci = 0; ci < inChannels; ci++) {
            let to = ((kh * filterWidth + kw) * inChannels + ci) * columns;
            for (let n = n0; n < n0 + images; n++, to += imageColumns) {
              const from = (n * inChannels + ci) * plane + offset;
              if (runs) {
                const length = Math.min(imageColumns, plane - offset);
                p.set(xv.subarray(from, from + length), to);
                if (length < imageColumns) p.fill(0, to + length, to + imageColumns);
              } else {
                let at = to;
                for (let oh = 0; oh < outHeight; oh++) {
                  const row = from + oh * sh * needed.width;
                  for (let ow = 0; ow < outWidth; ow++) p[at++] = xv[row + ow * sw];
                }
              }
            }
          }
        }
      }
      const dyRow = outWidth * outChannels;
      if (rowWidth === outWidth) d.set(dyv.subarray(n0 * outHeight * dyRow, (n0 + images) * outHeight * dyRow));
      else {
        d.fill(0);
        for (let r = 0; r < images * outHeight; r++) {
          const from = (n0 * outHeight + r) * dyRow;
          d.set(dyv.subarray(from, from + dyRow), r * rowWidth * outChannels);
        }
      }
      const product = runWasmKernel(backend, tf.BatchMatMul, { a: patches, b: dyGroup }, { transposeA: false, transposeB: false });
      const values = backend.typedArrayFromHeap(product) as Float32Array;
      for (let i = 0; i < values.length; i++) sum[i] += values[i];
      release(backend, product);
      intermediates.pop();
      intermediates.pop();
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
