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

/** Workgroups along the rows (dispatch y, limited to maxComputeWorkgroupsPerDimension: 65,535 by default). */
export function gemmRowTiles(rows: number): number {
  return Math.ceil(rows / GEMM_TILE);
}

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
   * `operands` is WGSL defining, for rows < rows, r < depth and col < cols:
   *   fn rowCoords(row : i32) -> vec4<i32>   what loadA needs of a row (once per row per workgroup)
   *   fn depthCoords(r : i32) -> vec4<i32>   what loadA needs of r (once per step per thread)
   *   fn loadA(rc : vec4<i32>, dc : vec4<i32>) -> f32
   *   fn loadB(r : i32, col : i32) -> f32
   * `uniforms` declares the fields they read (gemmRows, gemmCols, gemmDepth, gemmSteps come first).
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
    this.dispatch = [Math.ceil(shape.cols / GEMM_TILE), gemmRowTiles(shape.rows), 1];
  }

  /** The four leading uniform values; the caller appends its own. */
  gemmUniforms(): Array<{ type: string; data: number[] }> {
    const { rows, cols, depth } = this.shape;
    return [rows, cols, depth, Math.ceil(depth / TILE_R)].map((v) => ({ type: 'int32', data: [v] }));
  }

  getUserCode(): string {
    return `
      // A staged as [row][r] (16 consecutive threads write one row's 16 values of r), B as [r][col / 4].
      var<workgroup> tileA : array<f32, ${GEMM_TILE * TILE_R}>;
      var<workgroup> tileB : array<vec4<f32>, ${(TILE_R * GEMM_TILE) / 4}>;

      ${this.operands}

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let t = ty * 16 + tx;
        let colBase = i32(workgroupId.x) * ${GEMM_TILE};
        let rowBase = i32(workgroupId.y) * ${GEMM_TILE};

        // A: rows aRow + 16·e (e < 4), r = aR; B: r = bR + 4·e, column bCol.
        let aR = t % 16;
        let aRow = t / 16;
        var rowC : array<vec4<i32>, 4>;
        var rowOk : array<bool, 4>;
        for (var e = 0; e < 4; e++) {
          let row = rowBase + aRow + 16 * e;
          rowOk[e] = row < uniforms.gemmRows;
          if (rowOk[e]) {
            rowC[e] = rowCoords(row);
          }
        }
        let bR = t / ${GEMM_TILE};
        let bLocal = t % ${GEMM_TILE};
        let bCol = colBase + bLocal;

        var acc : array<vec4<f32>, 4>;
        for (var step = 0; step < uniforms.gemmSteps; step++) {
          let r0 = step * ${TILE_R};
          let r = r0 + aR;
          let rOk = r < uniforms.gemmDepth;
          var dc = vec4<i32>(0);
          if (rOk) {
            dc = depthCoords(r);
          }
          for (var e = 0; e < 4; e++) {
            var a = 0.0;
            if (rOk && rowOk[e]) {
              a = loadA(rowC[e], dc);
            }
            tileA[(aRow + 16 * e) * ${TILE_R} + aR] = a;
            let rb = r0 + bR + 4 * e;
            var b = 0.0;
            if (rb < uniforms.gemmDepth && bCol < uniforms.gemmCols) {
              b = loadB(rb, bCol);
            }
            tileB[(bR + 4 * e) * ${GEMM_TILE / 4} + bLocal / 4][bLocal % 4] = b;
          }
          workgroupBarrier();
          for (var rr = 0; rr < ${TILE_R}; rr++) {
            let ai = ty * 4 * ${TILE_R} + rr;
            let av = vec4<f32>(tileA[ai], tileA[ai + ${TILE_R}], tileA[ai + ${2 * TILE_R}], tileA[ai + ${3 * TILE_R}]);
            let bv = tileB[rr * ${GEMM_TILE / 4} + tx];
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
