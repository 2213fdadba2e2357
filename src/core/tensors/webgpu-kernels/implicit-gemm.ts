import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

/**
 * A matrix product out[row, col] = Σ_r A(row, r) · B(r, col) whose operands are read through WGSL
 * functions (`loadA`, `loadB`) instead of stored matrices: a convolution's im2col matrix is never
 * materialised. out is row-major [rows, cols], which for a conv is the NHWC output.
 *
 * Each workgroup of 16×16 threads computes a 64×64 tile (4×4 per thread), staging 16 values of r
 * per step for its 64 rows and 64 columns in workgroup memory. The step count is a uniform (the same
 * for every workgroup, as workgroupBarrier requires); out-of-range rows, columns and r read zero.
 */

export const GEMM_TILE = 64;
const TILE_R = 16;

export interface ImplicitGemmShape {
  rows: number;
  cols: number;
  /** Length of the reduction. */
  depth: number;
}

export class ImplicitGemmProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number];
  variableNames: string[];
  uniforms: string;
  workgroupSize: [number, number, number] = [16, 16, 1];

  /**
   * `operands` are WGSL defining `fn loadA(row : i32, r : i32) -> f32` and `fn loadB(r : i32, col :
   * i32) -> f32`, called only with row < rows, col < cols and r < depth; `uniforms` declares the
   * fields they read (after gemmRows, gemmCols, gemmDepth, gemmSteps, which come first).
   */
  constructor(
    readonly shape: ImplicitGemmShape,
    variableNames: string[],
    key: string,
    uniforms: string,
    private readonly operands: string,
  ) {
    this.outputShape = [shape.rows, shape.cols];
    this.variableNames = variableNames;
    this.shaderKey = `condense_implicit_gemm_${key}`;
    this.uniforms = `gemmRows : i32, gemmCols : i32, gemmDepth : i32, gemmSteps : i32, ${uniforms}`;
    this.dispatch = [Math.ceil(shape.cols / GEMM_TILE), Math.ceil(shape.rows / GEMM_TILE), 1];
  }

  /** The four leading uniform values; the caller appends its own. */
  gemmUniforms(): Array<{ type: string; data: number[] }> {
    const { rows, cols, depth } = this.shape;
    return [rows, cols, depth, Math.ceil(depth / TILE_R)].map((v) => ({ type: 'int32', data: [v] }));
  }

  getUserCode(): string {
    return `
      var<workgroup> tileA : array<f32, ${TILE_R * GEMM_TILE}>;
      var<workgroup> tileB : array<f32, ${TILE_R * GEMM_TILE}>;

      ${this.operands}

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let t = ty * 16 + tx;
        let colBase = i32(workgroupId.x) * ${GEMM_TILE};
        let rowBase = i32(workgroupId.y) * ${GEMM_TILE};

        // Staging: A by (row t / 4, four r from 4·(t % 4)), B by (r t / 16, four columns from 4·(t % 16)).
        let aRow = rowBase + t / 4;
        let aR = (t % 4) * 4;
        let bR = t / 16;
        let bCol = colBase + (t % 16) * 4;

        var acc : array<vec4<f32>, 4>;
        for (var step = 0; step < uniforms.gemmSteps; step++) {
          let r0 = step * ${TILE_R};
          for (var e = 0; e < 4; e++) {
            let r = r0 + aR + e;
            var a = 0.0;
            if (aRow < uniforms.gemmRows && r < uniforms.gemmDepth) {
              a = loadA(aRow, r);
            }
            tileA[(aR + e) * ${GEMM_TILE} + t / 4] = a;
            let rb = r0 + bR;
            let col = bCol + e;
            var b = 0.0;
            if (rb < uniforms.gemmDepth && col < uniforms.gemmCols) {
              b = loadB(rb, col);
            }
            tileB[bR * ${GEMM_TILE} + (t % 16) * 4 + e] = b;
          }
          workgroupBarrier();
          for (var rr = 0; rr < ${TILE_R}; rr++) {
            let ai = rr * ${GEMM_TILE} + ty * 4;
            let bi = rr * ${GEMM_TILE} + tx * 4;
            let av = vec4<f32>(tileA[ai], tileA[ai + 1], tileA[ai + 2], tileA[ai + 3]);
            let bv = vec4<f32>(tileB[bi], tileB[bi + 1], tileB[bi + 2], tileB[bi + 3]);
            acc[0] += av.x * bv;
            acc[1] += av.y * bv;
            acc[2] += av.z * bv;
            acc[3] += av.w * bv;
          }
          workgroupBarrier();
        }

        for (var i = 0; i < 4; i++) {
          let row = rowBase + ty * 4 + i;
          if (row < uniforms.gemmRows) {
            for (var j = 0; j < 4; j++) {
              let col = colBase + tx * 4 + j;
              if (col < uniforms.gemmCols) {
                result[row * uniforms.gemmCols + col] = acc[i][j];
              }
            }
          }
        }
      }
    `;
  }
}
