import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { type Conv2DBackpropInputAttrs, inputGradientCall } from '../conv-gradient-info';
import { runKernelOn } from '../kernel-calls';
import { CONV_PRODUCT_FIELDS, convUniformDeclarations, convUniformValues } from './conv-uniforms';
import { forwardConvFits, forwardConvInputGradient } from './conv2d-input-by-forward';
import { columnsBytes, columnsInputGradient } from './conv2d-input-columns';
import { DEFAULT_GEMM_TILE, deviceLimits, gemmRowTiles, ImplicitGemmProgram, type GemmDeviceLimits, type GemmTile } from './implicit-gemm';
import { reshapeReleasing } from './reshape';
import { shippedWebgpuKernelFunc } from './shipped';

/**
 * Conv2D's input gradient on webgpu as an implicit matrix product (implicit-gemm.ts).
 *
 * tfjs-backend-webgpu 4.22 runs Conv2DBackpropInput with a naive program by default (one thread per
 * input element looping over the filter): 44–51% of a ResNet-18 training or input-gradient step on
 * an H200. Here dx[(b,ih,iw), ci] = Σ_{(kh,kw,co)} dy[b, (ih+pad−kh)/s, (iw+pad−kw)/s, co] · W[kh,kw,ci,co]
 * over the positions where the division is exact, read from dy in place, with the filter transposed
 * once to [kh,kw,co,ci] so its rows are contiguous. Used where it measured faster (useGemmInputGradient);
 * strided and few-channel convs go through a stored columns matrix instead (conv2d-input-columns.ts).
 */

const INPUT_GRADIENT_FIELDS = CONV_PRODUCT_FIELDS;

/** A: dy gathered at the output position each (input pixel, filter tap) came from; B: filter [kh,kw,co,ci]. */
const INPUT_GRADIENT_OPERANDS = `
  fn rowCoords(row : i32) -> vec4<i32> {
    let plane = uniforms.inHeight * uniforms.inWidth;
    let b = row / plane;
    let p = row - b * plane;
    let ih = p / uniforms.inWidth;
    return vec4<i32>(b, ih + uniforms.padTop, p - ih * uniforms.inWidth + uniforms.padLeft, 0);
  }
  fn depthCoords(r : i32) -> vec4<i32> {
    let tapSize = uniforms.filterWidth * uniforms.outChannels;
    let kh = r / tapSize;
    let rest = r - kh * tapSize;
    let kw = rest / uniforms.outChannels;
    return vec4<i32>(kh, kw, rest - kw * uniforms.outChannels, 0);
  }
  fn loadA(rc : vec4<i32>, dc : vec4<i32>) -> f32 {
    let th = rc.y - dc.x;
    let tw = rc.z - dc.y;
    if (th < 0 || tw < 0) {
      return 0.0;
    }
    let oh = th / uniforms.strideHeight;
    let ow = tw / uniforms.strideWidth;
    if (oh * uniforms.strideHeight != th || ow * uniforms.strideWidth != tw || oh >= uniforms.outHeight || ow >= uniforms.outWidth) {
      return 0.0;
    }
    return dy[((rc.x * uniforms.outHeight + oh) * uniforms.outWidth + ow) * uniforms.outChannels + dc.z];
  }
  fn loadB(r : i32, col : i32) -> f32 {
    return weightsT[r * uniforms.inChannels + col];
  }
`;

/**
 * Where the implicit product beats the shipped kernel (H200, CIFAR ResNet-18 shapes, device
 * timestamps, bench:webgpu): stride 1 with 16 or more input channels, 1.5–2.3× faster. With stride 2
 * three quarters of its reduction are zeros (0.3× the shipped kernel's speed), and with few input
 * channels most of its 64-wide column tiles are empty (0.5× on the 3-channel stem).
 */
export function useGemmInputGradient(info: tf.backend_util.Conv2DInfo): boolean {
  return info.strideHeight === 1 && info.strideWidth === 1 && info.inChannels >= 16;
}

export type InputGradientPath = 'implicit' | 'columns' | 'forward' | 'shipped';

/**
 * How Conv2DBackpropInput runs a conv: the implicit product where it measured faster, the columns
 * matrix and col2im (conv2d-input-columns.ts) for the rest, each only within the device's limits
 * (the product's row tiles in one dispatch dimension, the columns matrix in one storage binding);
 * else the shipped kernel.
 */
export function inputGradientPath(info: tf.backend_util.Conv2DInfo, limits: GemmDeviceLimits): InputGradientPath {
  const preferred = useGemmInputGradient(info) ? 'implicit' : 'columns';
  return pathFits(preferred, info, limits) ? preferred : 'shipped';
}

/** Whether `path` can run the conv within the device's limits. */
export function pathFits(path: InputGradientPath, info: tf.backend_util.Conv2DInfo, limits: GemmDeviceLimits): boolean {
  const rowTilesFit = (rows: number) => gemmRowTiles(rows) <= limits.maxComputeWorkgroupsPerDimension;
  switch (path) {
    case 'implicit':
      return rowTilesFit(info.batchSize * info.inHeight * info.inWidth);
    case 'columns':
      return rowTilesFit(info.batchSize * info.outHeight * info.outWidth) && columnsBytes(info) <= limits.maxStorageBufferBindingSize;
    case 'forward':
      return forwardConvFits(info);
    case 'shipped':
      return true;
  }
}

function implicitInputGradient(backend: WebGPUBackend, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo, tile: GemmTile): tf.TensorInfo {
  const filterT = runKernelOn('webgpu', backend, tf.Transpose, { x: filter }, { perm: [0, 1, 3, 2] });
  const program = new ImplicitGemmProgram(
    { rows: info.batchSize * info.inHeight * info.inWidth, cols: info.inChannels, depth: info.filterHeight * info.filterWidth * info.outChannels },
    ['dy', 'weightsT'],
    'conv2d_input_gradient',
    convUniformDeclarations(INPUT_GRADIENT_FIELDS),
    INPUT_GRADIENT_OPERANDS,
    tile,
  );
  const flat = backend.runWebGPUProgram(program, [dy, filterT], 'float32', [...program.gemmUniforms(), ...convUniformValues(info, INPUT_GRADIENT_FIELDS)]);
  backend.disposeData(filterT.dataId);
  return reshapeReleasing(backend, flat, info.inShape);
}

/** Picks the path of one conv. */
export type InputGradientChooser = (info: tf.backend_util.Conv2DInfo, limits: GemmDeviceLimits) => InputGradientPath;

/**
 * The Conv2DBackpropInput kernel for webgpu. Benchmarks pass another `choose` or `tile` to time each
 * path and tile on the same shapes; by default inputGradientPath chooses per conv, with 4×4 per thread.
 */
export function conv2DBackpropInputKernel(choose: InputGradientChooser = inputGradientPath, tile: GemmTile = DEFAULT_GEMM_TILE): tf.KernelConfig {
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: Conv2DBackpropInputAttrs }): tf.TensorInfo => {
    const { backend, attrs } = args;
    const { dy, filter, info } = inputGradientCall('webgpu', args.inputs, attrs);
    const limits = deviceLimits(backend);
    const path = choose(info, limits);
    if (!pathFits(path, info, limits)) {
      if (path === 'forward') {
        throw new Error(`webgpu Conv2DBackpropInput: the forward path does not apply to stride ${info.strideHeight}×${info.strideWidth} with padding ${JSON.stringify(info.padInfo)}`);
      }
      throw new Error(
        `webgpu Conv2DBackpropInput: the ${path} path does not fit this device for input ${info.inShape.join('×')} and filter ` +
          `${[info.filterHeight, info.filterWidth, info.inChannels, info.outChannels].join('×')} (columns matrix ${columnsBytes(info)} bytes, ` +
          `storage binding limit ${limits.maxStorageBufferBindingSize}; workgroups per dimension ${limits.maxComputeWorkgroupsPerDimension})`,
      );
    }
    switch (path) {
      case 'implicit':
        return implicitInputGradient(backend, dy, filter, info, tile);
      case 'columns':
        return columnsInputGradient(backend, dy, filter, info, tile);
      case 'forward':
        return forwardConvInputGradient(backend, dy, filter, info);
      case 'shipped':
        return shippedWebgpuKernelFunc(tf.Conv2DBackpropInput)(args as never) as tf.TensorInfo;
    }
  };
  return { kernelName: tf.Conv2DBackpropInput, backendName: 'webgpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

export const conv2DBackpropInputConfig: tf.KernelConfig = conv2DBackpropInputKernel();
