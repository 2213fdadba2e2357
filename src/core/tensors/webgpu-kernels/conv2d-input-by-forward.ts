import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { runKernelOn } from '../kernel-calls';
import { convUniformDeclarations, convUniformValues, type ConvField } from './conv-uniforms';
import { PerElementProgram } from './per-element-program';

/**
 * A stride-1 conv's input gradient as a forward conv: with W' the filter turned by 180° in its
 * spatial axes and its channel axes swapped, W'[kh, kw, co, ci] = W[fh−1−kh, fw−1−kw, ci, co],
 *   dx[b, ih, iw, ci] = Σ dy[b, ih + padTop − kh, iw + padLeft − kw, co] · W[kh, kw, ci, co]
 *                     = conv2d(dy, W') with padding fh−1−padTop above, fh−1−padBottom below (and so
 * on across), so it runs on whichever Conv2D kernel the backend has, the fastest conv it measured.
 * Two programs: the filter turned, the conv.
 */

const TURN_FIELDS: readonly ConvField[] = ['filterHeight', 'filterWidth', 'inChannels', 'outChannels'];

/** W [fh, fw, ci, co] → W' [fh, fw, co, ci] turned by 180° in (fh, fw). */
class TurnedFilterProgram extends PerElementProgram {
  shaderKey = 'condense_turned_filter';
  variableNames = ['W'];
  uniforms = convUniformDeclarations(TURN_FIELDS);

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let ci = index % uniforms.inChannels;
          let t = index / uniforms.inChannels;
          let co = t % uniforms.outChannels;
          let tap = t / uniforms.outChannels;
          let kw = tap % uniforms.filterWidth;
          let kh = tap / uniforms.filterWidth;
          let source = (((uniforms.filterHeight - 1 - kh) * uniforms.filterWidth + uniforms.filterWidth - 1 - kw) * uniforms.inChannels + ci) * uniforms.outChannels + co;
          setOutputAtIndex(index, W[source]);
        }
      }
    `;
  }
}

/** The forward conv's padding, [[top, bottom], [left, right]], or undefined where it does not apply. */
function forwardPadding(info: tf.backend_util.Conv2DInfo): [[number, number], [number, number]] | undefined {
  if (info.strideHeight !== 1 || info.strideWidth !== 1 || info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined;
  const { top, bottom, left, right } = info.padInfo;
  const pads: [[number, number], [number, number]] = [
    [info.filterHeight - 1 - top, info.filterHeight - 1 - bottom],
    [info.filterWidth - 1 - left, info.filterWidth - 1 - right],
  ];
  return pads.flat().every((p) => p >= 0) ? pads : undefined;
}

/** Whether the conv's input gradient can run as a forward conv (stride 1, dilation 1, padding below the filter size). */
export function forwardConvFits(info: tf.backend_util.Conv2DInfo): boolean {
  return forwardPadding(info) !== undefined;
}

export function forwardConvInputGradient(backend: WebGPUBackend, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const pads = forwardPadding(info);
  if (pads === undefined) throw new Error(`webgpu Conv2DBackpropInput: the forward-conv path needs stride 1 and dilation 1, got ${JSON.stringify(info.padInfo)}`);
  const turned = backend.runWebGPUProgram(
    new TurnedFilterProgram([info.filterHeight, info.filterWidth, info.outChannels, info.inChannels]),
    [filter],
    'float32',
    convUniformValues(info, TURN_FIELDS),
  );
  const dx = runKernelOn('webgpu', backend, tf.Conv2D, { x: dy, filter: turned }, {
    strides: 1,
    pad: [[0, 0], ...pads, [0, 0]],
    dataFormat: 'NHWC',
    dilations: 1,
  } as unknown as tf.NamedAttrMap);
  backend.disposeData(turned.dataId);
  return dx;
}
