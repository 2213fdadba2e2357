import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { kernelInput } from '../kernel-calls';
import { CONV_PRODUCT_FIELDS, type ConvField, convUniformDeclarations, convUniformValues } from './conv-uniforms';
import { DEFAULT_GEMM_TILE, deviceLimits, gemmRowTiles, ImplicitGemmProgram, type GemmTile } from './implicit-gemm';
import { reshapeReleasing } from './reshape';
import { shippedWebgpuKernelFunc } from './shipped';

/**
 * Conv2D and FusedConv2D (bias, linear or relu) on webgpu as an implicit matrix product
 * (implicit-gemm.ts): y[(b,oh,ow), co] = Σ_{(kh,kw,ci)} x[b, oh·s + kh·d − pad, ow·s + kw·d − pad, ci]
 * · W[kh,kw,ci,co], x read in place, W as the row-major [kh·kw·ci, co] matrix it already is.
 *
 * A candidate, not registered by default: tfjs-backend-webgpu 4.22's own forward conv (Conv2DMMProgram,
 * batch as a dispatch dimension) has not been measured against it yet. bench:webgpu times both per
 * ResNet-18 shape and in whole steps; other activations, PReLU weights, NCHW and convs past the
 * dispatch limit run the shipped kernel.
 */

interface Conv2DAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
}

const FORWARD_FIELDS: readonly ConvField[] = [...CONV_PRODUCT_FIELDS, 'dilationHeight', 'dilationWidth'];

/** A: x at the input pixel each (output pixel, filter tap) reads; B: the filter [(kh,kw,ci), co]. */
const FORWARD_OPERANDS = `
  fn rowCoords(row : i32) -> vec4<i32> {
    let plane = uniforms.outHeight * uniforms.outWidth;
    let b = row / plane;
    let p = row - b * plane;
    let oh = p / uniforms.outWidth;
    return vec4<i32>(b, oh * uniforms.strideHeight - uniforms.padTop, (p - oh * uniforms.outWidth) * uniforms.strideWidth - uniforms.padLeft, 0);
  }
  fn depthCoords(r : i32) -> vec4<i32> {
    let tapSize = uniforms.filterWidth * uniforms.inChannels;
    let kh = r / tapSize;
    let rest = r - kh * tapSize;
    let kw = rest / uniforms.inChannels;
    return vec4<i32>(kh * uniforms.dilationHeight, kw * uniforms.dilationWidth, rest - kw * uniforms.inChannels, 0);
  }
  fn loadA(rc : vec4<i32>, dc : vec4<i32>) -> f32 {
    let ih = rc.y + dc.x;
    let iw = rc.z + dc.y;
    if (ih < 0 || iw < 0 || ih >= uniforms.inHeight || iw >= uniforms.inWidth) {
      return 0.0;
    }
    return x[((rc.x * uniforms.inHeight + ih) * uniforms.inWidth + iw) * uniforms.inChannels + dc.z];
  }
  fn loadB(r : i32, col : i32) -> f32 {
    return W[r * uniforms.outChannels + col];
  }
`;

/** The epilogue of each output value: + bias[co] when there is one, then the activation. */
function epilogueCode(hasBias: boolean, activation: 'linear' | 'relu'): string {
  const biased = hasBias ? 'value + bias[col]' : 'value';
  return `
  fn epilogue(value : f32, col : i32) -> f32 {
    let v = ${biased};
    return ${activation === 'relu' ? 'max(v, 0.0)' : 'v'};
  }
`;
}

type ConvKernelName = typeof tf.Conv2D | typeof tf.FusedConv2D;

/**
 * The Conv2D or FusedConv2D kernel for webgpu through the implicit product with `tile` outputs per
 * thread; what it does not cover goes to the shipped kernel.
 */
export function conv2DForwardKernel(kernelName: ConvKernelName, tile: GemmTile = DEFAULT_GEMM_TILE): tf.KernelConfig {
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: Conv2DAttrs }): tf.TensorInfo => {
    const { backend, attrs, inputs } = args;
    const x = kernelInput(inputs, 'x', kernelName);
    const filter = kernelInput(inputs, 'filter', kernelName);
    const bias = kernelName === tf.FusedConv2D ? inputs.bias : undefined;
    const activation = attrs.activation ?? 'linear';
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      attrs.strides,
      attrs.dilations,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      tf.backend_util.convertConv2DDataFormat(attrs.dataFormat),
    );
    const rows = info.batchSize * info.outHeight * info.outWidth;
    const covered =
      attrs.dataFormat === 'NHWC' &&
      x.dtype === 'float32' &&
      (activation === 'linear' || activation === 'relu') &&
      inputs.preluActivationWeights === undefined &&
      (bias === undefined || (bias.shape.length === 1 && bias.shape[0] === info.outChannels)) &&
      gemmRowTiles(rows) <= deviceLimits(backend).maxComputeWorkgroupsPerDimension;
    if (!covered) return shippedWebgpuKernelFunc(kernelName)(args as never) as tf.TensorInfo;
    const program = new ImplicitGemmProgram(
      { rows, cols: info.outChannels, depth: info.filterHeight * info.filterWidth * info.inChannels },
      bias === undefined ? ['x', 'W'] : ['x', 'W', 'bias'],
      `conv2d_forward_${bias === undefined ? 'nobias' : 'bias'}_${activation}`,
      convUniformDeclarations(FORWARD_FIELDS),
      FORWARD_OPERANDS + epilogueCode(bias !== undefined, activation),
      tile,
      true,
    );
    const flat = backend.runWebGPUProgram(program, bias === undefined ? [x, filter] : [x, filter, bias], 'float32', [...program.gemmUniforms(), ...convUniformValues(info, FORWARD_FIELDS)]);
    return reshapeReleasing(backend, flat, info.outShape);
  };
  return { kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}
