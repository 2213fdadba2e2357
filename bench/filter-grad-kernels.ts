/**
 * Milliseconds per call of wasm Conv2DBackpropFilter on the shapes ResNet-20 (batch 128) and
 * LeNet-5-BN (batch 256) train with, against the forward conv doing the same multiply-adds.
 *
 *   npm run build && node dist/bench/filter-grad-kernels.js [--runs 10]
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { Command } from 'commander';
import { initTensorBackend } from '../src/core/tensors/backend';
import { IM2COL_COLUMNS, im2colFilterGradient, swappedConvFilterGradient } from '../src/core/tensors/wasm-kernels/conv2d-backprop-filter';
import { printTable } from './support/table';

interface Shape {
  label: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  stride: number;
  pad: 'same' | 'valid';
}

export const SHAPES: Shape[] = [
  { label: 'resnet stem', x: [128, 32, 32, 3], filter: [3, 3, 3, 16], stride: 1, pad: 'same' },
  { label: 'resnet stage 1 (×6)', x: [128, 32, 32, 16], filter: [3, 3, 16, 16], stride: 1, pad: 'same' },
  { label: 'resnet 1→2 s2', x: [128, 32, 32, 16], filter: [3, 3, 16, 32], stride: 2, pad: 'same' },
  { label: 'resnet 1→2 shortcut', x: [128, 32, 32, 16], filter: [1, 1, 16, 32], stride: 2, pad: 'same' },
  { label: 'resnet stage 2 (×5)', x: [128, 16, 16, 32], filter: [3, 3, 32, 32], stride: 1, pad: 'same' },
  { label: 'resnet 2→3 s2', x: [128, 16, 16, 32], filter: [3, 3, 32, 64], stride: 2, pad: 'same' },
  { label: 'resnet 2→3 shortcut', x: [128, 16, 16, 32], filter: [1, 1, 32, 64], stride: 2, pad: 'same' },
  { label: 'resnet stage 3 (×5)', x: [128, 8, 8, 64], filter: [3, 3, 64, 64], stride: 1, pad: 'same' },
  { label: 'lenet conv1', x: [256, 28, 28, 1], filter: [5, 5, 1, 6], stride: 1, pad: 'same' },
  { label: 'lenet conv2', x: [256, 14, 14, 6], filter: [5, 5, 6, 16], stride: 1, pad: 'valid' },
];

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Medians of each call's ms, the calls taken in turn (a, b, c, a, b, c, ...) so that load from other
 * processes, which comes and goes, falls on all of them alike.
 */
function timeInTurn(calls: (() => void)[], runs: number): number[] {
  for (const call of calls) call();
  const times = calls.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    calls.forEach((call, k) => {
      const start = process.hrtime.bigint();
      call();
      times[k].push(Number(process.hrtime.bigint() - start) / 1e6);
    });
  }
  return times.map(median);
}

function relativeMaxError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    maxRef = Math.max(maxRef, Math.abs(b[i]));
  }
  return maxDiff / Math.max(maxRef, 1);
}

async function main(): Promise<void> {
  const options = new Command()
    .option('--runs <n>', 'timed calls per kernel (median reported)', '10')
    .option('--columns <list>', 'im2col: image positions per matrix product (group size)', String(IM2COL_COLUMNS.target))
    .option('--only <text>', 'shapes whose label contains this')
    .parse()
    .opts<{ runs: string; columns: string; only?: string }>();
  await initTensorBackend('wasm');
  const backend = tf.backend() as unknown as BackendWasm;
  const runs = Number(options.runs);
  const columnsList = options.columns.split(',').map(Number);
  const defaultColumns = IM2COL_COLUMNS.target;
  const rows: (string | number)[][] = [];
  for (const s of SHAPES.filter((sh) => options.only === undefined || sh.label.includes(options.only))) {
    const info = tf.backend_util.computeConv2DInfo(s.x, s.filter, s.stride, 1, s.pad, undefined, false, 'channelsLast');
    const x = tf.randomNormal(s.x);
    const dy = tf.randomNormal(info.outShape);
    const w = tf.randomNormal(s.filter);
    const dispose = (out: tf.TensorInfo | tf.TensorInfo[]) => {
      for (const o of Array.isArray(out) ? out : [out]) backend.disposeData(o.dataId);
    };
    const kernel = (name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap) => () => dispose(tf.getKernel(name, 'wasm')!.kernelFunc({ inputs, backend, attrs }));
    const im2colWith = (columns: number) => () => {
      IM2COL_COLUMNS.target = columns;
      dispose(im2colFilterGradient(backend, x, dy, info));
      IM2COL_COLUMNS.target = defaultColumns;
    };
    const [forward, swapped, registered, ...im2colMs] = timeInTurn(
      [
        kernel(tf.Conv2D, { x, filter: w }, { strides: s.stride, pad: s.pad, dataFormat: 'NHWC', dilations: 1 }),
        () => dispose(swappedConvFilterGradient(backend, x, dy, info)),
        kernel(tf.Conv2DBackpropFilter, { x, dy }, { strides: s.stride, pad: s.pad, dataFormat: 'NHWC', filterShape: s.filter }),
        ...columnsList.map(im2colWith),
      ],
      runs,
    );
    const reference = swappedConvFilterGradient(backend, x, dy, info);
    const referenceValues = Float32Array.from(backend.typedArrayFromHeap(reference) as Float32Array);
    backend.disposeData(reference.dataId);
    let error = 0;
    for (const columns of columnsList) {
      IM2COL_COLUMNS.target = columns;
      const out = im2colFilterGradient(backend, x, dy, info);
      error = Math.max(error, relativeMaxError(backend.typedArrayFromHeap(out) as Float32Array, referenceValues));
      backend.disposeData(out.dataId);
    }
    IM2COL_COLUMNS.target = defaultColumns;
    const im2col = im2colMs.map((ms) => ms.toFixed(1));
    const macs = info.batchSize * info.outHeight * info.outWidth * s.filter.reduce((a, b) => a * b, 1);
    rows.push([s.label, `${s.x.join('×')} → ${info.outShape.join('×')}, ${s.filter[0]}×${s.filter[1]} s${s.stride}`, forward, swapped, im2col.join(' / '), registered, macs / registered / 1e6, error.toExponential(1)]);
    tf.dispose([x, dy, w]);
  }
  printTable(
    `wasm Conv2DBackpropFilter, ms per call (median of ${runs}, the calls of a shape taken in turn); im2col with ${columnsList.join(' / ')} positions per product; forward conv of the same shape for scale`,
    ['shape', 'x → dy, kernel', 'forward conv', 'swapped conv', 'im2col + matmul', 'registered', 'registered G MAC/s', 'im2col vs swapped (rel. err)'],
    rows,
    [0, 0, 1, 1, 0, 1, 1, 0],
  );
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
