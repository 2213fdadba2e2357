import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelInput } from './kernel-calls';
import { runShippedKernel } from './shipped';
import { copyBox } from './slice';

type NumericArray = Float32Array | Int32Array | Uint8Array;

/** Runs shorter than this are copied element by element: subarray + set costs more than the loop. */
const SHORT_RUN = 16;

/**
 * PadV2 (constant padding; Slice's gradient) over the wasm heap: fill, then the input as contiguous
 * runs into its box (see copyBox). tfjs-backend-wasm 4.22's C++ kernel walks the output element by
 * element: ~3 ms for a TV-prior slice gradient on [256, 28, 28, 1], 20–100× a copy.
 * Empty inputs, negative paddings and strings run the shipped kernel.
 */
function padV2(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const { backend } = args;
  const x = kernelInput(args.inputs, 'x', tf.PadV2);
  const { paddings, constantValue } = args.attrs as unknown as { paddings: Array<[number, number]>; constantValue: number };
  if (x.dtype === 'string' || tf.util.sizeFromShape(x.shape) === 0 || paddings.some(([a, b]) => a < 0 || b < 0)) {
    return runShippedKernel(tf.PadV2, args);
  }
  const outShape = x.shape.map((n, i) => paddings[i][0] + n + paddings[i][1]);
  // Allocate first: growing the heap would detach views taken before.
  const out = backend.makeOutput(outShape, x.dtype);
  const big = backend.typedArrayFromHeap(out) as NumericArray;
  const xs = backend.typedArrayFromHeap(x) as NumericArray;
  big.fill(constantValue);
  copyBox(
    big,
    outShape,
    paddings.map((p) => p[0]),
    x.shape,
    xs,
    true,
  );
  return out;
}

/**
 * Concat over the wasm heap: as the shipped kernel (per outer index, each input's inner block in
 * turn), but short blocks are copied element by element instead of one subarray + set each, which
 * made concatenation along W of [256, 28, 28, 1] images (torch.roll) ~1 ms, 50× a copy.
 * Strings and a single non-empty input run the shipped kernel.
 */
function concat(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const { backend } = args;
  const inputs = args.inputs as unknown as tf.TensorInfo[];
  const first = inputs[0];
  if (first === undefined) throw new Error('Concat was called without inputs');
  const nonEmpty = inputs.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
  if (first.dtype === 'string' || nonEmpty.length <= 1) return runShippedKernel(tf.Concat, args);
  const axis = tf.util.parseAxisParam((args.attrs as unknown as { axis: number | number[] }).axis, first.shape)[0];
  const shapes = inputs.map((t) => t.shape);
  tf.backend_util.assertParamsConsistent(shapes, axis);
  const outShape = tf.backend_util.computeOutShape(shapes, axis);
  const out = backend.makeOutput(outShape, first.dtype);
  const outer = tf.util.sizeFromShape(first.shape.slice(0, axis));
  const inner = nonEmpty.map((t) => tf.util.sizeFromShape(t.shape.slice(axis)));
  const values = nonEmpty.map((t) => backend.typedArrayFromHeap(t) as NumericArray);
  interleave(backend.typedArrayFromHeap(out) as NumericArray, values, inner, outer);
  return out;
}

function interleave(out: NumericArray, values: NumericArray[], inner: number[], outer: number): void {
  let at = 0;
  for (let b = 0; b < outer; b++) {
    for (let i = 0; i < values.length; i++) {
      const n = inner[i];
      const v = values[i];
      const from = b * n;
      if (n < SHORT_RUN) {
        for (let j = 0; j < n; j++) out[at + j] = v[from + j];
      } else {
        out.set(v.subarray(from, from + n), at);
      }
      at += n;
    }
  }
}

export const padV2Config: tf.KernelConfig = {
  kernelName: tf.PadV2,
  backendName: 'wasm',
  kernelFunc: padV2 as unknown as tf.KernelFunc,
};

export const concatConfig: tf.KernelConfig = {
  kernelName: tf.Concat,
  backendName: 'wasm',
  kernelFunc: concat as unknown as tf.KernelFunc,
};
