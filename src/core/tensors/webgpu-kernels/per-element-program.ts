import * as tf from '@tensorflow/tfjs';
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

const WORKGROUP = 64;

/**
 * A program with one thread per element of its output, over a flat dispatch: its WGSL is
 * `fn main(index : i32)` guarded by `index < uniforms.size`. The dispatch is one-dimensional; the
 * backend folds it into y (and z) beyond the per-dimension limit.
 */
export abstract class PerElementProgram implements WebGPUProgram {
  outputShape: number[];
  abstract shaderKey: string;
  abstract variableNames: string[];
  abstract uniforms: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  size = true;

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = [Math.ceil(tf.util.sizeFromShape(shape) / WORKGROUP), 1, 1];
  }

  abstract getUserCode(): string;
}
