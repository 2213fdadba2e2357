/**
 * Per-kernel profile of the bench:backend workloads on one backend: for each model and work, the
 * wall time of one step, the time inside kernels (tf.profile's kernelMs; on wasm kernels run
 * synchronously, so it is their real time) and a table of kernels by total time.
 *
 *   npm run build && node dist/bench/profile-step.js [--backend wasm --models lenet5-bn --works train --top 15 --layers-inversion]
 *
 * On webgpu it also counts the GPU programs one step dispatches (a kernel may run several), and
 * `--without CondenseChannelMoments,...` takes Condense kernels out (shipped or composed instead).
 */
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import type { BackendName } from '../src/core/config/config';
import { initTensorBackend } from '../src/core/tensors/backend';
import { restoreShippedWebgpuKernels } from '../src/core/tensors/webgpu-kernels';
import { printTable } from './support/table';
import { BENCH_MODELS, CPU_BENCH_MODEL_IDS, makeWorkload, WORKS, type Work } from './support/steps';

/** Counts the backend's GPU program runs (webgpu's runWebGPUProgram); a count of 0 elsewhere. */
function countGpuPrograms(): { count: () => number } {
  let runs = 0;
  const backend = tf.backend() as unknown as { runWebGPUProgram?: (...args: unknown[]) => unknown };
  const run = backend.runWebGPUProgram;
  if (typeof run === 'function') {
    backend.runWebGPUProgram = function (this: unknown, ...args: unknown[]) {
      runs++;
      return run.apply(this, args);
    };
  }
  return { count: () => runs };
}

async function main(): Promise<void> {
  const options = new Command()
    .option('--backend <name>', 'TF.js backend', 'wasm')
    .option('--models <list>', `models, of ${BENCH_MODELS.map((m) => m.id).join(',')}`, CPU_BENCH_MODEL_IDS.join(','))
    .option('--works <list>', 'works', WORKS.join(','))
    .option('--warmup <n>', 'untimed steps first', '2')
    .option('--top <n>', 'kernels listed per workload', '15')
    .option('--layers-inversion', "inversion through the layers model's own (fused) ops, as before the input-only path")
    .option('--without <kernels>', "webgpu: Condense kernels to leave out (tfjs' own or composed ops instead)", '')
    .parse()
    .opts<{ backend: string; models: string; works: string; warmup: string; top: string; layersInversion?: boolean; without: string }>();
  await initTensorBackend(options.backend as BackendName);
  const without = options.without.split(',').filter(Boolean);
  if (without.length > 0) restoreShippedWebgpuKernels(without);
  const programs = countGpuPrograms();
  const list = (v: string) => v.split(',').map((s) => s.trim());
  for (const bm of BENCH_MODELS.filter((m) => list(options.models).includes(m.id))) {
    for (const work of list(options.works) as Work[]) {
      const workload = makeWorkload(bm, work, 0, { layersInversion: options.layersInversion });
      for (let i = 0; i < Number(options.warmup); i++) await workload.step();
      const programsBefore = programs.count();
      const start = process.hrtime.bigint();
      let stepMs = 0;
      const profile = await tf.profile(async () => {
        await workload.step();
        stepMs = Number(process.hrtime.bigint() - start) / 1e6;
      });
      const byKernel = new Map<string, { ms: number; calls: number }>();
      for (const k of profile.kernels) {
        const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
        entry.ms += Number(k.kernelTimeMs);
        entry.calls += 1;
        byKernel.set(k.name, entry);
      }
      const kernelMs = [...byKernel.values()].reduce((a, e) => a + e.ms, 0);
      const programCount = programs.count() - programsBefore;
      const rows = [...byKernel.entries()]
        .sort((a, b) => b[1].ms - a[1].ms)
        .slice(0, Number(options.top))
        .map(([name, e]) => [name, e.calls, e.ms, (100 * e.ms) / kernelMs]);
      printTable(
        `${bm.label}, ${work}${work === 'inversion' && options.layersInversion ? ' (layers ops)' : ''} on ${options.backend}: ` +
          `step ${stepMs.toFixed(0)} ms (profiled), kernels ${kernelMs.toFixed(0)} ms in ${profile.kernels.length} calls` +
          (programCount > 0 ? `, ${programCount} GPU programs` : '') +
          (without.length > 0 ? ` (without ${without.join(', ')})` : ''),
        ['kernel', 'calls', 'ms', '% of kernel time'],
        rows,
        [0, 0, 1, 1],
      );
      workload.dispose();
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
