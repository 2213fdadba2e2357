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
 * Read with ci as the batch and b as the channels, that is a convolution of x transposed to
 * [ci,H,W,b] with dy transposed to [oh,ow,b,co] as the filter, stride = the forward dilation d
 * and dilation = the forward stride s; its output [ci,KH,KW,co] is dW transposed. The forward
 * conv's top/left padding is kept and the bottom/right edge is padded or cropped so that exactly
 * KH×KW outputs come out. This runs on XNNPACK like a forward conv.
 */
function conv2DBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: Conv2DBackpropFilterAttrs }): tf.TensorInfo {
  const { backend, attrs } = args;
  const x = kernelInput(args.inputs, 'x', tf.Conv2DBackpropFilter);
  const dy = kernelInput(args.inputs, 'dy', tf.Conv2DBackpropFilter);
  if (attrs.dataFormat !== 'NHWC') {
    throw new Error(`wasm Conv2DBackpropFilter supports dataFormat 'NHWC' only, got '${attrs.dataFormat}'`);
  }
  const dilations = attrs.dilations ?? 1;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const [batch, inHeight, inWidth, inChannels] = x.shape;
  if (dy.shape[1] !== info.outHeight || dy.shape[2] !== info.outWidth || dy.shape[3] !== info.outChannels) {
    throw new Error(`wasm Conv2DBackpropFilter: dy shape ${JSON.stringify(dy.shape)} does not match the conv output ${JSON.stringify(info.outShape)}`);
  }

  // Rows/columns of x (after top/left padding) that the gradient touches.
  const neededHeight = (info.filterHeight - 1) * info.dilationHeight + (info.outHeight - 1) * info.strideHeight + 1;
  const neededWidth = (info.filterWidth - 1) * info.dilationWidth + (info.outWidth - 1) * info.strideWidth + 1;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const keptHeight = Math.min(inHeight, neededHeight - padTop);
  const keptWidth = Math.min(inWidth, neededWidth - padLeft);
  const padBottom = neededHeight - padTop - keptHeight;
  const padRight = neededWidth - padLeft - keptWidth;

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
