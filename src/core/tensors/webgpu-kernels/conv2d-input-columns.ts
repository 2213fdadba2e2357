import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { runKernelOn } from '../kernel-calls';
import { type ConvField, convUniformDeclarations, convUniformValues, int32Uniforms } from './conv-uniforms';
import { DEFAULT_GEMM_TILE, ImplicitGemmProgram, type GemmTile } from './implicit-gemm';
import { PerElementProgram } from './per-element-program';

/**
 * Conv2D's input gradient on webgpu in two passes, for the convs the implicit product
 * (conv2d-gemm.ts) serves badly: strided convs, where three quarters of its reduction would be
 * zeros, and few input channels (the 3-channel stem), where its 64-wide column tiles are mostly empty.
 *
 *   1. columns[(b,oh,ow), (kh,kw,ci)] = Σ_co dy[b,oh,ow,co] · W[kh,kw,ci,co], a dense matrix product
 *      (no zeros in its reduction, kh·kw·ci columns);
 *   2. dx[b,ih,iw,ci] = Σ_{kh,kw} columns[(b,oh,ow), (kh,kw,ci)] over the taps with
 *      ih + padTop = oh·strideH + kh and iw + padLeft = ow·strideW + kw (col2im, as a gather: one
 *      thread per element of dx, no atomics).
 *
 * The columns matrix is stored: batch·outH·outW by kh·kw·ci floats (75 MB for ResNet-18's first
 * strided conv at batch 128); where it would not fit one storage binding the shipped kernel runs.
 */

/** Bytes of the columns matrix of the conv `info` describes. */
export function columnsBytes(info: tf.backend_util.Conv2DInfo): number {
  return 4 * info.batchSize * info.outHeight * info.outWidth * info.filterHeight * info.filterWidth * info.inChannels;
}

const COL2IM_FIELDS: ConvField[] = [
  'inHeight',
  'inWidth',
  'inChannels',
  'outHeight',
  'outWidth',
  'filterHeight',
  'filterWidth',
  'strideHeight',
  'strideWidth',
  'padTop',
  'padLeft',
];

/** dx [b, ih, iw, ci] gathered from the columns matrix; one thread per element. */
class Col2ImProgram extends PerElementProgram {
  shaderKey = 'condense_conv2d_input_gradient_col2im';
  variableNames = ['columns'];
  uniforms = `${convUniformDeclarations(COL2IM_FIELDS)} columnsWidth : i32,`;

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let ci = index % uniforms.inChannels;
          let pixel = index / uniforms.inChannels;
          let iw = pixel % uniforms.inWidth;
          let rows = pixel / uniforms.inWidth;
          let ih = rows % uniforms.inHeight;
          let b = rows / uniforms.inHeight;
          var total = 0.0;
          for (var kh = 0; kh < uniforms.filterHeight; kh++) {
            let th = ih + uniforms.padTop - kh;
            if (th < 0) {
              break;
            }
            let oh = th / uniforms.strideHeight;
            if (oh * uniforms.strideHeight != th || oh >= uniforms.outHeight) {
              continue;
            }
            for (var kw = 0; kw < uniforms.filterWidth; kw++) {
              let tw = iw + uniforms.padLeft - kw;
              if (tw < 0) {
                break;
              }
              let ow = tw / uniforms.strideWidth;
              if (ow * uniforms.strideWidth != tw || ow >= uniforms.outWidth) {
                continue;
              }
              let row = (b * uniforms.outHeight + oh) * uniforms.outWidth + ow;
              total += columns[row * uniforms.columnsWidth + (kh * uniforms.filterWidth + kw) * uniforms.inChannels + ci];
            }
          }
          setOutputAtIndex(index, total);
        }
      }
    `;
  }
}

/** A: dy as the matrix [(b,oh,ow), co]; B: the filter as [co, (kh,kw,ci)]. */
const COLUMNS_OPERANDS = `
  fn rowCoords(row : i32) -> vec4<i32> {
    return vec4<i32>(row * uniforms.outChannels, 0, 0, 0);
  }
  fn depthCoords(r : i32) -> vec4<i32> {
    return vec4<i32>(r, 0, 0, 0);
  }
  fn loadA(rc : vec4<i32>, dc : vec4<i32>) -> f32 {
    return dy[rc.x + dc.x];
  }
  fn loadB(r : i32, col : i32) -> f32 {
    return filterT[r * uniforms.gemmCols + col];
  }
`;

/** dx of Conv2D through the columns matrix (dilation 1; tfjs' Conv2DBackpropInput has no dilation). */
export function columnsInputGradient(
  backend: WebGPUBackend,
  dy: tf.TensorInfo,
  filter: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  tile: GemmTile = DEFAULT_GEMM_TILE,
): tf.TensorInfo {
  const k = info.filterHeight * info.filterWidth * info.inChannels;
  // [kh,kw,ci,co] → [co,kh,kw,ci]: row r of B is output channel r, contiguous over (kh,kw,ci).
  const filterT = runKernelOn('webgpu', backend, tf.Transpose, { x: filter }, { perm: [3, 0, 1, 2] });
  const gemm = new ImplicitGemmProgram(
    { rows: info.batchSize * info.outHeight * info.outWidth, cols: k, depth: info.outChannels },
    ['dy', 'filterT'],
    'conv2d_input_gradient_columns',
    'outChannels : i32,',
    COLUMNS_OPERANDS,
    tile,
  );
  const columns = backend.runWebGPUProgram(gemm, [dy, filterT], 'float32', [...gemm.gemmUniforms(), ...int32Uniforms([info.outChannels])]);
  backend.disposeData(filterT.dataId);
  const uniforms = [...convUniformValues(info, COL2IM_FIELDS), ...int32Uniforms([k])];
  const dx = backend.runWebGPUProgram(new Col2ImProgram(info.inShape), [columns], 'float32', uniforms);
  backend.disposeData(columns.dataId);
  return dx;
}
