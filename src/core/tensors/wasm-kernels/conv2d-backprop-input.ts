import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type Conv2DBackpropInputAttrs, inputGradientCall } from '../conv-gradient-info';
import { release, runWasmKernel } from './kernel-calls';

/**
 * dx[b,ih,iw,ci] = Σ_{oh·s+kh−padTop = ih, ow·s+kw−padLeft = iw} dy[b,oh,ow,co] · W[kh,kw,ci,co].
 *
 * With dy dilated by the stride (s−1 zeros after every row and column), that is a stride-1
 * correlation of the dilated dy with W flipped in both spatial axes and its channel axes swapped,
 * padded KH−1−padTop on top and KW−1−padLeft on the left; the bottom/right edge is padded (or
 * cropped) so exactly inHeight×inWidth outputs come out. It runs on XNNPACK like a forward conv:
 * tfjs-backend-wasm's own Conv2DBackpropInput is a plain loop about 10× slower. Equal strides
 * > 1 with the kernel at least the stride take the sub-pixel path below instead (no zeros).
 */
function conv2DBackpropInput(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: Conv2DBackpropInputAttrs }): tf.TensorInfo {
  const { backend, attrs } = args;
  const { dy, filter, info } = inputGradientCall('wasm', args.inputs, attrs);
  const [batch, outHeight, outWidth, outChannels] = dy.shape;
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, inHeight, inWidth } = info;

  if (sh === sw && sh > 1 && kh >= sh && kw >= sw) {
    return subPixelBackpropInput(backend, dy, filter, info);
  }

  const intermediates: tf.TensorInfo[] = [];
  const keep = (t: tf.TensorInfo) => {
    intermediates.push(t);
    return t;
  };
  try {
    // Dilate: [b,oh,1,ow,1,c] padded to [b,oh,sh,ow,sw,c] puts sh−1 / sw−1 zeros after each row / column.
    let dilated = dy;
    let dilatedHeight = outHeight;
    let dilatedWidth = outWidth;
    if (sh > 1 || sw > 1) {
      const split = keep(runWasmKernel(backend, tf.Reshape, { x: dy }, { shape: [batch, outHeight, 1, outWidth, 1, outChannels] }));
      const padded = keep(
        runWasmKernel(
          backend,
          tf.PadV2,
          { x: split },
          { paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0 },
        ),
      );
      dilatedHeight = outHeight * sh;
      dilatedWidth = outWidth * sw;
      dilated = keep(runWasmKernel(backend, tf.Reshape, { x: padded }, { shape: [batch, dilatedHeight, dilatedWidth, outChannels] }));
    }
    // Padding of the dilated dy; a negative amount is a crop.
    let top = kh - 1 - info.padInfo.top;
    let left = kw - 1 - info.padInfo.left;
    let bottom = inHeight + kh - 1 - top - dilatedHeight;
    let right = inWidth + kw - 1 - left - dilatedWidth;
    if (top < 0 || left < 0 || bottom < 0 || right < 0) {
      const begin = [0, Math.max(0, -top), Math.max(0, -left), 0];
      const size = [batch, dilatedHeight - begin[1] - Math.max(0, -bottom), dilatedWidth - begin[2] - Math.max(0, -right), outChannels];
      dilated = keep(runWasmKernel(backend, tf.Slice, { x: dilated }, { begin, size }));
      top = Math.max(0, top);
      left = Math.max(0, left);
      bottom = Math.max(0, bottom);
      right = Math.max(0, right);
    }
    // W[kh,kw,ci,co] → W[KH−1−kh, KW−1−kw, co, ci].
    const flipped = keep(runWasmKernel(backend, tf.Reverse, { x: filter }, { dims: [0, 1] }));
    const swapped = keep(runWasmKernel(backend, tf.Transpose, { x: flipped }, { perm: [0, 1, 3, 2] }));
    return runWasmKernel(
      backend,
      tf.Conv2D,
      { x: dilated, filter: swapped },
      {
        strides: [1, 1],
        dilations: [1, 1],
        pad: [
          [0, 0],
          [top, bottom],
          [left, right],
          [0, 0],
        ],
        dataFormat: 'NHWC',
      },
    );
  } finally {
    for (const t of intermediates) release(backend, t);
  }
}

/**
 * Stride s > 1 without the s² zeros: split dx by phase. With ih + padTop = s·q + ρ,
 * dx[ih] = Σ_m dy[q − m] · W[ρ + s·m], a stride-1 correlation of dy with the taps of W ≡ ρ (mod s).
 * All s² phases (in both axes) run as one conv whose output channels are (ρh, ρw, ci) — phases
 * with fewer taps get zero taps — and a transpose interleaves them into rows s·q + ρ, from which
 * dx is cut out. The same multiply-adds as the forward conv, up to the zero taps (16/9 of it for
 * 3×3 stride 2, where inserting zeros into dy costs 4×).
 */
function subPixelBackpropInput(backend: BackendWasm, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const s = info.strideHeight;
  const { filterHeight: kh, filterWidth: kw, inHeight, inWidth, inChannels, outChannels, batchSize, outHeight, outWidth } = info;
  const tapsH = Math.ceil(kh / s);
  const tapsW = Math.ceil(kw / s);
  const rowsQ = Math.ceil((info.padInfo.top + inHeight) / s);
  const colsQ = Math.ceil((info.padInfo.left + inWidth) / s);
  const phaseChannels = s * s * inChannels;

  // F[m'h, m'w, co, (ρh·s + ρw)·ci] = W[ρh + s·(tapsH−1−m'h), ρw + s·(tapsW−1−m'w), ci, co], 0 outside W.
  const w = backend.readSync(filter.dataId) as Float32Array;
  const f = new Float32Array(tapsH * tapsW * outChannels * phaseChannels);
  for (let mh = 0; mh < tapsH; mh++)
    for (let mw = 0; mw < tapsW; mw++)
      for (let rh = 0; rh < s; rh++) {
        const fh = rh + s * (tapsH - 1 - mh);
        if (fh >= kh) continue;
        for (let rw = 0; rw < s; rw++) {
          const fw = rw + s * (tapsW - 1 - mw);
          if (fw >= kw) continue;
          for (let ci = 0; ci < inChannels; ci++)
            for (let co = 0; co < outChannels; co++) {
              f[((mh * tapsW + mw) * outChannels + co) * phaseChannels + (rh * s + rw) * inChannels + ci] = w[((fh * kw + fw) * inChannels + ci) * outChannels + co];
            }
        }
      }

  const intermediates: tf.TensorInfo[] = [];
  const keep = (t: tf.TensorInfo) => {
    intermediates.push(t);
    return t;
  };
  try {
    const phaseFilter = keep(backend.makeOutput([tapsH, tapsW, outChannels, phaseChannels], 'float32', undefined, f));
    // dy rows past rowsQ only reach rows of dx beyond its end: crop them; pad the others.
    let input = dy;
    if (outHeight > rowsQ || outWidth > colsQ) {
      input = keep(
        runWasmKernel(backend, tf.Slice, { x: dy }, { begin: [0, 0, 0, 0], size: [batchSize, Math.min(outHeight, rowsQ), Math.min(outWidth, colsQ), outChannels] }),
      );
    }
    const phases = keep(
      runWasmKernel(
        backend,
        tf.Conv2D,
        { x: input, filter: phaseFilter },
        {
          strides: [1, 1],
          dilations: [1, 1],
          pad: [
            [0, 0],
            [tapsH - 1, Math.max(0, rowsQ - outHeight)],
            [tapsW - 1, Math.max(0, colsQ - outWidth)],
            [0, 0],
          ],
          dataFormat: 'NHWC',
        },
      ),
    );
    // Interleave: [b, q, q', ρh, ρw, ci] → [b, q, ρh, q', ρw, ci] (wasm's DepthToSpace is 10× slower than this transpose).
    const split = keep(runWasmKernel(backend, tf.Reshape, { x: phases }, { shape: [batchSize, rowsQ, colsQ, s, s, inChannels] }));
    const moved = keep(runWasmKernel(backend, tf.Transpose, { x: split }, { perm: [0, 1, 3, 2, 4, 5] }));
    const interleaved = runWasmKernel(backend, tf.Reshape, { x: moved }, { shape: [batchSize, rowsQ * s, colsQ * s, inChannels] });
    if (info.padInfo.top === 0 && info.padInfo.left === 0 && rowsQ * s === inHeight && colsQ * s === inWidth) return interleaved;
    keep(interleaved);
    return runWasmKernel(backend, tf.Slice, { x: interleaved }, { begin: [0, info.padInfo.top, info.padInfo.left, 0], size: [batchSize, inHeight, inWidth, inChannels] });
  } finally {
    for (const t of intermediates) release(backend, t);
  }
}

export const conv2DBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput as unknown as tf.KernelFunc,
};
