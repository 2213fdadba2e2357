/**
 * Milliseconds per call of the wasm kernels the synthesis priors and generators use every iteration
 * (TV-prior slices and their PadV2 gradients, torch.roll's SplitV + Concat, nearest-neighbour
 * upsampling and its gradient), Condense's replacement against tfjs-backend-wasm's shipped kernel,
 * on NHWC batches. A copy of the same number of floats (TypedArray.set) is the floor.
 *
 *   npm run build && node dist/bench/slice-resize-kernels.js [--shapes 256x28x28x1,256x28x28x6,256x14x14x16 --runs 20]
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { Command } from 'commander';
import { initTensorBackend } from '../src/core/tensors/backend';
import { shippedWasmKernel } from '../src/core/tensors/wasm-kernels';
import { printTable } from './support/table';

type Call = () => void;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timeMs(call: Call, runs: number): number {
  for (let i = 0; i < 3; i++) call();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    call();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(times);
}

function runner(backend: BackendWasm, config: tf.KernelConfig | undefined, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap): Call | undefined {
  if (config === undefined) return undefined;
  config.setupFunc?.(backend);
  return () => {
    const out = config.kernelFunc({ inputs, backend, attrs });
    for (const info of Array.isArray(out) ? out : [out]) backend.disposeData(info.dataId);
  };
}

async function main(): Promise<void> {
  const options = new Command()
    .option('--shapes <list>', 'NHWC shapes', '256x28x28x1,256x28x28x6,256x14x14x16')
    .option('--runs <n>', 'timed calls per kernel (median reported)', '20')
    .parse()
    .opts<{ shapes: string; runs: string }>();
  await initTensorBackend('wasm');
  const backend = tf.backend() as unknown as BackendWasm;
  const runs = Number(options.runs);
  const rows: string[][] = [];
  for (const text of options.shapes.split(',')) {
    const [n, h, w, c] = text.split('x').map(Number);
    const x = tf.randomNormal([n, h, w, c]);
    const half = tf.randomNormal([n, Math.ceil(h / 2), Math.ceil(w / 2), c]);
    const up = tf.randomNormal([n, 2 * Math.ceil(h / 2), 2 * Math.ceil(w / 2), c]);
    const rollA = tf.randomNormal([n, h - 3, w, c]);
    const rollB = tf.randomNormal([n, 3, w, c]);
    const rollC = tf.randomNormal([n, h, w - 3, c]);
    const rollD = tf.randomNormal([n, h, 3, c]);
    const dPad = tf.randomNormal([n, h - 1, w - 1, c]);
    const floor = new Float32Array(n * h * w * c);
    const source = new Float32Array(n * h * w * c);
    const cases: { name: string; kernel: string; inputs: tf.NamedTensorInfoMap; attrs: tf.NamedAttrMap }[] = [
      { name: 'Slice x[:, 1:, 1:, :]', kernel: tf.Slice, inputs: { x }, attrs: { begin: [0, 1, 1, 0], size: [n, h - 1, w - 1, c] } },
      { name: 'Slice x[:, :, 1:, :]', kernel: tf.Slice, inputs: { x }, attrs: { begin: [0, 0, 1, 0], size: [n, h, w - 1, c] } },
      { name: 'Slice x[:, 1:, :, :]', kernel: tf.Slice, inputs: { x }, attrs: { begin: [0, 1, 0, 0], size: [n, h - 1, w, c] } },
      { name: 'SplitV [h-3, 3] axis 1', kernel: tf.SplitV, inputs: { x }, attrs: { numOrSizeSplits: [h - 3, 3], axis: 1 } },
      { name: 'SplitV [w-3, 3] axis 2', kernel: tf.SplitV, inputs: { x }, attrs: { numOrSizeSplits: [w - 3, 3], axis: 2 } },
      { name: 'Concat axis 1', kernel: tf.Concat, inputs: [rollB, rollA] as unknown as tf.NamedTensorInfoMap, attrs: { axis: 1 } },
      { name: 'Concat axis 2', kernel: tf.Concat, inputs: [rollD, rollC] as unknown as tf.NamedTensorInfoMap, attrs: { axis: 2 } },
      { name: 'PadV2 (slice grad)', kernel: tf.PadV2, inputs: { x: dPad }, attrs: { paddings: [[0, 0], [1, 0], [1, 0], [0, 0]], constantValue: 0 } },
      { name: 'ResizeNN ½ → 1', kernel: tf.ResizeNearestNeighbor, inputs: { images: half }, attrs: { alignCorners: false, halfPixelCenters: false, size: [2 * Math.ceil(h / 2), 2 * Math.ceil(w / 2)] } },
      { name: 'ResizeNNGrad 1 → ½', kernel: tf.ResizeNearestNeighborGrad, inputs: { images: half, dy: up }, attrs: { alignCorners: false, halfPixelCenters: false } },
    ];
    rows.push([`${text}`, 'copy floor', timeMs(() => floor.set(source), runs).toFixed(3), '', '']);
    for (const c of cases) {
      const registered = tf.getKernel(c.kernel, 'wasm');
      const shipped = shippedWasmKernel(c.kernel);
      const ours = shipped === undefined ? undefined : runner(backend, registered, c.inputs, c.attrs);
      const theirs = runner(backend, shipped ?? registered, c.inputs, c.attrs);
      const before = theirs === undefined ? NaN : timeMs(theirs, runs);
      const after = ours === undefined ? NaN : timeMs(ours, runs);
      rows.push([
        text,
        c.name,
        before.toFixed(3),
        Number.isNaN(after) ? '(shipped)' : after.toFixed(3),
        Number.isNaN(after) ? '' : `${(before / after).toFixed(1)}×`,
      ]);
    }
    tf.dispose([x, half, up, rollA, rollB, rollC, rollD, dPad]);
  }
  printTable('wasm kernels, median ms per call (shared machine: other work may run)', ['shape', 'kernel', 'shipped ms', 'Condense ms', 'speed-up'], rows);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
