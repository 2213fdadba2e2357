import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { int32Uniforms, type ProgramUniform } from './conv-uniforms';

/**
 * A matrix product out[row, col] = Σ_r A(row, r) · B(r, col) whose operands are read through WGSL
 * functions (`loadA`, `loadB`) instead of stored matrices: a convolution's im2col matrix is never
 * materialised. out is row-major [rows, cols], which for a conv is the NHWC output.
 *
 * Each workgroup of 16×16 threads computes a tile of 16·m rows by 16·n columns, m×n per thread
 * (`GemmTile`: 4×4, a 64×64 tile, is the one measured on an H200; 8×4 and 8×8 do more arithmetic per
 * value staged, for large products), staging 16 values of r per step for its rows and columns in
 * workgroup memory. A thread's rows are contiguous (16·m·ty + i); its columns are groups of 4, 64
 * apart (4·tx + 64·q + j), so that a row of B is read as consecutive vec4s across the threads. The
 * step count is a uniform (the same for every workgroup, as workgroupBarrier requires);
 * out-of-range rows, columns and r read zero.
 */

/** Rows and columns of out per thread. */
export interface GemmTile {
  rowsPerThread: 4 | 8;
  colsPerThread: 4 | 8;
}

export const DEFAULT_GEMM_TILE: GemmTile = { rowsPerThread: 4, colsPerThread: 4 };

/** The tiles a program can take, by name ('4x4', '8x4', '8x8'). */
export const GEMM_TILES: Record<string, GemmTile> = {
  '4x4': DEFAULT_GEMM_TILE,
  '8x4': { rowsPerThread: 8, colsPerThread: 4 },
  '8x8': { rowsPerThread: 8, colsPerThread: 8 },
};

/** The device limits a product and its operands are checked against (names as in GPUSupportedLimits). */
export interface GemmDeviceLimits {
  maxStorageBufferBindingSize: number;
  maxComputeWorkgroupsPerDimension: number;
}

/** The limits of the device a webgpu backend (tfjs-backend-webgpu's WebGPUBackend) runs on. */
export function deviceLimits(backend: unknown): GemmDeviceLimits {
  return (backend as { device: { limits: GemmDeviceLimits } }).device.limits;
}

/** Rows of the smallest tile: the most row tiles any tile needs. */
export const GEMM_TILE = 64;
const TILE_R = 16;
const THREADS = 256;

/** Workgroups along the rows with the smallest tile (dispatch y, limited to maxComputeWorkgroupsPerDimension: 65,535 by default). */
export function gemmRowTiles(rows: number): number {
  return Math.ceil(rows / GEMM_TILE);
}

export interface ImplicitGemmShape {
  rows: number;
  cols: number;
  /** Length of the reduction. */
  depth: number;
}

/** WGSL statements for i < n, one per line (the hot loop is written out: no arrays indexed at run time). */
function each(n: number, statement: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => statement(i)).join('\n            ');
}

export class ImplicitGemmProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number];
  variableNames: string[];
  uniforms: string;
  workgroupSize: [number, number, number] = [16, 16, 1];
  private readonly tileRows: number;
  private readonly tileCols: number;

  /**
   * `operands` is WGSL defining, for rows < rows, r < depth and col < cols:
   *   fn rowCoords(row : i32) -> vec4<i32>   what loadA needs of a row (once per row per workgroup)
   *   fn depthCoords(r : i32) -> vec4<i32>   what loadA needs of r (once per step per thread)
   *   fn loadA(rc : vec4<i32>, dc : vec4<i32>) -> f32
   *   fn loadB(r : i32, col : i32) -> f32
   * and, with `epilogue`, fn epilogue(value : f32, col : i32) -> f32, applied to each output.
   * `uniforms` declares the fields they read (gemmRows, gemmCols, gemmDepth, gemmSteps come first).
   */
  constructor(
    readonly shape: ImplicitGemmShape,
    variableNames: string[],
    key: string,
    uniforms: string,
    private readonly operands: string,
    private readonly tile: GemmTile = DEFAULT_GEMM_TILE,
    private readonly epilogue = false,
  ) {
    this.outputShape = [shape.rows, shape.cols];
    this.variableNames = variableNames;
    this.tileRows = 16 * tile.rowsPerThread;
    this.tileCols = 16 * tile.colsPerThread;
    this.shaderKey = `condense_implicit_gemm_${key}_${tile.rowsPerThread}x${tile.colsPerThread}`;
    this.uniforms = `gemmRows : i32, gemmCols : i32, gemmDepth : i32, gemmSteps : i32, ${uniforms}`;
    this.dispatch = [Math.ceil(shape.cols / this.tileCols), Math.ceil(shape.rows / this.tileRows), 1];
  }

  /** The four leading uniform values; the caller appends its own. */
  gemmUniforms(): ProgramUniform[] {
    const { rows, cols, depth } = this.shape;
    return int32Uniforms([rows, cols, depth, Math.ceil(depth / TILE_R)]);
  }

  getUserCode(): string {
    const m = this.tile.rowsPerThread;
    const quads = this.tile.colsPerThread / 4;
    const tm = this.tileRows;
    const tn = this.tileCols;
    // B is staged by rows of r: THREADS / tn threads per row of r, each row's tn columns in one pass.
    const bRowsAtOnce = THREADS / tn;
    return `
      // A staged as [row][r] (16 consecutive threads write one row's 16 values of r), B as [r][col / 4].
      var<workgroup> tileA : array<f32, ${tm * TILE_R}>;
      var<workgroup> tileB : array<vec4<f32>, ${(TILE_R * tn) / 4}>;

      ${this.operands}

      /** Four consecutive columns of one row, those in range. */
      fn store(row : i32, col : i32, values : vec4<f32>) {
        if (row < uniforms.gemmRows) {
          for (var j = 0; j < 4; j++) {
            if (col + j < uniforms.gemmCols) {
              result[row * uniforms.gemmCols + col + j] = ${this.epilogue ? 'epilogue(values[j], col + j)' : 'values[j]'};
            }
          }
        }
      }

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let t = ty * 16 + tx;
        let colBase = i32(workgroupId.x) * ${tn};
        let rowBase = i32(workgroupId.y) * ${tm};

        // A: rows aRow + 16·e (e < ${m}), r = aR; B: r = bR + ${bRowsAtOnce}·e (e < ${TILE_R / bRowsAtOnce}), column bCol.
        let aR = t % 16;
        let aRow = t / 16;
        var rowC : array<vec4<i32>, ${m}>;
        var rowOk : array<bool, ${m}>;
        for (var e = 0; e < ${m}; e++) {
          let row = rowBase + aRow + 16 * e;
          rowOk[e] = row < uniforms.gemmRows;
          if (rowOk[e]) {
            rowC[e] = rowCoords(row);
          }
        }
        let bR = t / ${tn};
        let bLocal = t % ${tn};
        let bCol = colBase + bLocal;

        ${each(m, (i) => each(quads, (q) => `var acc${i}_${q} = vec4<f32>(0.0);`))}
        for (var step = 0; step < uniforms.gemmSteps; step++) {
          let r0 = step * ${TILE_R};
          let r = r0 + aR;
          let rOk = r < uniforms.gemmDepth;
          var dc = vec4<i32>(0);
          if (rOk) {
            dc = depthCoords(r);
          }
          for (var e = 0; e < ${m}; e++) {
            var a = 0.0;
            if (rOk && rowOk[e]) {
              a = loadA(rowC[e], dc);
            }
            tileA[(aRow + 16 * e) * ${TILE_R} + aR] = a;
          }
          for (var e = 0; e < ${TILE_R / bRowsAtOnce}; e++) {
            let rb = r0 + bR + ${bRowsAtOnce} * e;
            var b = 0.0;
            if (rb < uniforms.gemmDepth && bCol < uniforms.gemmCols) {
              b = loadB(rb, bCol);
            }
            tileB[(bR + ${bRowsAtOnce} * e) * ${tn / 4} + bLocal / 4][bLocal % 4] = b;
          }
          workgroupBarrier();
          for (var rr = 0; rr < ${TILE_R}; rr++) {
            let aBase = ty * ${m * TILE_R} + rr;
            ${each(m, (i) => `let a${i} = tileA[aBase + ${i * TILE_R}];`)}
            ${each(quads, (q) => `let b${q} = tileB[rr * ${tn / 4} + tx + ${16 * q}];`)}
            ${each(m, (i) => each(quads, (q) => `acc${i}_${q} += a${i} * b${q};`))}
          }
          workgroupBarrier();
        }

        ${each(m, (i) => each(quads, (q) => `store(rowBase + ty * ${m} + ${i}, colBase + tx * 4 + ${64 * q}, acc${i}_${q});`))}
      }
    `;
  }
}
