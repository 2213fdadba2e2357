import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput } from './kernel-calls';
import { runShippedKernel } from './shipped';

type NumericArray = Float32Array | Int32Array | Uint8Array;

/** Runs shorter than this are copied element by element: subarray + set costs more than the loop. */
const SHORT_RUN = 16;

/**
 * Moves the box `begin`/`size` of a row-major tensor of `shape` held in `big` to or from `dense`
 * (the box alone, row-major): gathers the box into `dense` (a slice), or with `scatter` writes
 * `dense` into the box of `big` (a pad, `big` filled beforehand). The innermost dimensions taken
 * whole merge with the next one into a single contiguous run, so this is at most one copy per outer
 * index: x[:, 1:, :, :] on NHWC is one run per image, x[:, :, 1:, :] one per image row. Any rank.
 */
export function copyBox(
  big: NumericArray,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
  dense: NumericArray,
  scatter = false,
): void {
  const rank = shape.length;
  let total = 1;
  for (let i = 0; i < rank; i++) total *= size[i];
  if (total === 0) return;
  // The run: innermost dims taken whole, times the size of the first dim (from inside) that is not.
  let run = 1;
  let k = rank - 1;
  while (k >= 0 && size[k] === shape[k]) run *= shape[k--];
  if (k < 0) {
    moveRuns1(big, dense, 0, run, 1, 0, scatter);
    return;
  }
  const strides = new Array<number>(rank);
  strides[rank - 1] = 1;
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * shape[i + 1];
  run *= size[k];
  let base = begin[k] * strides[k];
  // Outer dims 0..k-1, with size-1 dims folded into the base offset.
  const outerSizes: number[] = [];
  const outerStrides: number[] = [];
  for (let i = 0; i < k; i++) {
    base += begin[i] * strides[i];
    if (size[i] !== 1) {
      outerSizes.push(size[i]);
      outerStrides.push(strides[i]);
    }
  }
  const depth = outerSizes.length;
  if (depth === 0) {
    moveRuns1(big, dense, base, run, 1, 0, scatter);
    return;
  }
  if (depth === 1) {
    moveRuns1(big, dense, base, run, outerSizes[0], outerStrides[0], scatter);
    return;
  }
  // An odometer over the outer indices but the last two, which are loops.
  const n0 = outerSizes[depth - 2];
  const s0 = outerStrides[depth - 2];
  const n1 = outerSizes[depth - 1];
  const s1 = outerStrides[depth - 1];
  const counters = new Array<number>(depth - 2).fill(0);
  const block = n0 * n1 * run;
  let denseAt = 0;
  for (;;) {
    let from = base;
    for (let i = 0; i < depth - 2; i++) from += counters[i] * outerStrides[i];
    moveRuns2(big, dense.subarray(denseAt, denseAt + block), from, run, n0, s0, n1, s1, scatter);
    denseAt += block;
    let i = depth - 3;
    while (i >= 0 && ++counters[i] === outerSizes[i]) counters[i--] = 0;
    if (i < 0) return;
  }
}

/** `n0` runs of `run` elements at `base + a·s0` in `big`, back to back in `dense`. */
function moveRuns1(big: NumericArray, dense: NumericArray, base: number, run: number, n0: number, s0: number, scatter: boolean): void {
  let at = 0;
  if (run < SHORT_RUN) {
    for (let a = 0; a < n0; a++) {
      const from = base + a * s0;
      if (scatter) for (let j = 0; j < run; j++) big[from + j] = dense[at++];
      else for (let j = 0; j < run; j++) dense[at++] = big[from + j];
    }
    return;
  }
  for (let a = 0; a < n0; a++, at += run) {
    const from = base + a * s0;
    if (scatter) big.set(dense.subarray(at, at + run), from);
    else dense.set(big.subarray(from, from + run), at);
  }
}

/** `n0·n1` runs of `run` elements at `base + a·s0 + b·s1` in `big`, back to back in `dense`. */
function moveRuns2(
  big: NumericArray,
  dense: NumericArray,
  base: number,
  run: number,
  n0: number,
  s0: number,
  n1: number,
  s1: number,
  scatter: boolean,
): void {
  let at = 0;
  if (run < SHORT_RUN) {
    for (let a = 0; a < n0; a++) {
      for (let b = 0; b < n1; b++) {
        const from = base + a * s0 + b * s1;
        if (scatter) for (let j = 0; j < run; j++) big[from + j] = dense[at++];
        else for (let j = 0; j < run; j++) dense[at++] = big[from + j];
      }
    }
    return;
  }
  for (let a = 0; a < n0; a++) {
    for (let b = 0; b < n1; b++, at += run) {
      const from = base + a * s0 + b * s1;
      if (scatter) big.set(dense.subarray(at, at + run), from);
      else dense.set(big.subarray(from, from + run), at);
    }
  }
}

/** One slice of `x` into a new wasm tensor; `begin`/`size` already resolved (no −1). */
function sliceTensor(backend: BackendWasm, x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
  // Allocate first: growing the heap would detach views taken before.
  const out = backend.makeOutput(size, x.dtype);
  if (tf.util.sizeFromShape(size) === 0) return out;
  const xs = backend.typedArrayFromHeap(x) as NumericArray;
  const outs = backend.typedArrayFromHeap(out) as NumericArray;
  copyBox(xs, x.shape, begin, size, outs);
  return out;
}

/**
 * Slice for wasm tensors, read straight from the heap. tfjs-backend-wasm 4.22's copies the whole
 * input out of the heap first (readSync) and then, for a non-contiguous slice of rank 4, makes a
 * subarray + set per innermost row even when that row is one channel long (rank 5+ goes through the
 * cpu backend's per-element sliceImpl): ~11 ms per TV-prior slice of a [256, 28, 28, 1] batch.
 * Strings run the shipped kernel.
 */
function slice(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const x = kernelInput(args.inputs, 'x', tf.Slice);
  if (x.dtype === 'string') return runShippedKernel(tf.Slice, args);
  const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
  const [begin_, size_] = tf.slice_util.parseSliceParams(x, begin, size);
  tf.slice_util.assertParamsValid(x, begin_, size_);
  return sliceTensor(args.backend, x, begin_, size_);
}

/**
 * SplitV for wasm tensors through the slice above. The shipped SplitV calls the shipped Slice
 * function directly (not the registered kernel), so replacing Slice alone would not reach it.
 */
function splitV(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo[] {
  const x = kernelInput(args.inputs, 'x', tf.SplitV);
  const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number | number[] };
  const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
  const splitSizes = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, $axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  const outs: tf.TensorInfo[] = [];
  for (const s of splitSizes) {
    const size = x.shape.slice();
    size[$axis] = s;
    if (x.dtype === 'string') {
      outs.push(runShippedKernel(tf.Slice, { inputs: { x }, backend: args.backend, attrs: { begin: begin.slice(), size } }));
    } else {
      outs.push(sliceTensor(args.backend, x, begin.slice(), size));
    }
    begin[$axis] += s;
  }
  return outs;
}

export const sliceConfig: tf.KernelConfig = {
  kernelName: tf.Slice,
  backendName: 'wasm',
  kernelFunc: slice as unknown as tf.KernelFunc,
};

export const splitVConfig: tf.KernelConfig = {
  kernelName: tf.SplitV,
  backendName: 'wasm',
  kernelFunc: splitV as unknown as tf.KernelFunc,
};
