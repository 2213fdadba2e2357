/**
 * Worker-thread parallelism benchmark with the wasm backend:
 * - training step of LeNet-5-BN (28×28×1, batch 256) and CIFAR ResNet-20 (32×32×3, batch 128):
 *   one thread (no workers) vs a ParallelTrainer over 1 and 2 workers (the batch split between them);
 * - DeepInversion input-gradient step on LeNet-5-BN (CE + BN statistics, Adam on pixels), batch 256: one thread vs
 *   1 worker vs 2 workers, each worker advancing its own independent batch;
 * - synthesis throughput: images finished per second, B batches of K iterations each, vs the same
 *   loop in PyTorch (bench/torch/synthesis.py) with 1 and 2 threads.
 *
 *   npm run bench:parallel [-- --steps 10 --resnet-steps 5 --warmup 2 --iterations 20 --batches 4 --rounds 2 --models lenet5-bn,resnet20 --no-torch]
 *
 * Writes bench/results/parallel.json. The runners' steps are timed in turn (main, 1 worker, 2 workers,
 * main, ...) and synthesis rounds alternate runners, so that load from other processes falls on all
 * of them alike; the machine's load average is recorded with the results, since other processes on
 * the same cores still make every figure here noisy.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import type { ModelSpec } from '../src/core/models/model-spec';
import { buildModel } from '../src/core/models/zoo';
import { type Job, runJobHere } from '../src/core/parallel/job-kinds';
import type { InversionBatchConfig } from '../src/core/parallel/inversion-job';
import { serializeModel, type SerializedModel } from '../src/core/parallel/model-transfer';
import { type FlatBatch, ParallelTrainer } from '../src/core/parallel/parallel-trainer';
import { WorkerPool } from '../src/core/parallel/worker-pool';
import { SeededRandom } from '../src/core/random';
import { initTensorBackend } from '../src/core/tensors/backend';
import { createOptimizer, trainableParams } from '../src/core/training/optimizers';
import { crossEntropy } from '../src/core/training/trainer';
import { machineInfo, repoRoot } from './support/machine';
import { writeBenchResults } from './support/results';
import { BENCH_MODELS, CPU_BENCH_MODEL_IDS, type BenchModel } from './support/steps';
import { type Cell, printTable } from './support/table';
import { median, type StepTiming } from './support/timing';

const LENET: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 };
const BATCH = 256;
const LEARNING_RATE = 0.01;

/** Models whose training step is timed (bench:backend's, same batches); inversion and synthesis run LeNet-5-BN only. */
const TRAIN_MODELS = Object.fromEntries(BENCH_MODELS.map((m) => [m.id, m])) as Record<BenchModel['id'], BenchModel>;
type TrainModel = BenchModel['id'];

type Runner = 'main thread' | '1 worker' | '2 workers';

interface StepResult {
  work: 'train' | 'inversion';
  model: TrainModel;
  runner: Runner;
  /** Independent batches advanced by one step (inversion on 2 workers: 2). */
  batchesPerStep: number;
  timing: StepTiming;
  /** Median over steps of (CPU time of this process) / (wall time): the cores the runner really got. */
  coresUsed: number;
  /** Wall ms of one step divided by the batches it advanced. */
  msPerBatchStep: number;
}

interface ThroughputResult {
  runner: Runner | `PyTorch ${number}t`;
  batches: number;
  iterations: number;
  wallS: number;
  imagesPerSecond: number;
  /** CPU time of this process over wall time (Condense runners only). */
  coresUsed?: number;
}

function log(message: string): void {
  process.stderr.write(`[bench:parallel] ${message}\n`);
}

function randomBatch(spec: ModelSpec, count: number, seed: number): FlatBatch {
  const random = new SeededRandom(seed);
  const pixels = spec.inputShape[0] * spec.inputShape[1] * spec.inputShape[2];
  const images = Float32Array.from({ length: count * pixels }, () => random.gaussian());
  const labels = Int32Array.from({ length: count }, () => random.int(spec.numClasses));
  return { images, labels, count };
}

/** A step to time and what frees its state afterwards. */
interface Timed {
  step: () => Promise<void>;
  /** Batches one step advances (independent synthesis batches on 2 workers: 2). */
  batchesPerStep: number;
  /** Divides a step's wall ms (an inversion round of several iterations counts per iteration). */
  perStep: number;
  dispose: () => Promise<void>;
}

/** The replicas' step on one thread: gradients of the mean CE with BN in training mode, SGD update. */
function trainMainThread(spec: ModelSpec, batch: FlatBatch, seed: number): Timed {
  const model = buildModel(spec, seed);
  const params = trainableParams(model);
  const variables = params.map((p) => p.variable);
  const optimizer = createOptimizer(params, { kind: 'sgd', momentum: 0.9 });
  const step = async () => {
    const x = tf.tensor4d(batch.images, [batch.count, ...spec.inputShape]);
    const y = tf.tensor1d(batch.labels, 'int32');
    const { value, grads } = tf.variableGrads(() => crossEntropy(model.apply(x, { training: true }) as tf.Tensor2D, y), variables);
    optimizer.step(variables.map((v) => grads[v.name]), LEARNING_RATE);
    await value.data();
    tf.dispose([x, y, value, ...Object.values(grads)]);
  };
  return { step, batchesPerStep: 1, perStep: 1, dispose: async () => {
      optimizer.dispose();
      model.dispose();
    },
  };
}

async function trainInPool(pool: WorkerPool, spec: ModelSpec, batch: FlatBatch, seed: number): Promise<Timed> {
  const model = buildModel(spec, seed);
  const trainer = await ParallelTrainer.create(pool, model, { optimizer: { kind: 'sgd', momentum: 0.9 } });
  return {
    step: async () => void (await trainer.step(batch, LEARNING_RATE)),
    batchesPerStep: 1,
    perStep: 1,
    dispose: async () => {
      await trainer.dispose();
      model.dispose();
    },
  };
}

function inversionJob(teacher: SerializedModel, seed: number, config: InversionBatchConfig): Job<'deep-inversion.batch'> {
  return { kind: 'deep-inversion.batch', payload: { teacher, targets: Int32Array.from({ length: BATCH }, (_, i) => i % 10), seed, config } };
}

/**
 * Inversion steps timed as rounds of `config.iterations` iterations (a job per batch, teacher cached):
 * a round's wall time over the iterations is the ms of one step; with 2 workers a step advances 2 batches.
 */
function inversionSteps(pool: WorkerPool | undefined, teacher: SerializedModel, config: InversionBatchConfig): Timed {
  const workers = pool?.size ?? 1;
  let seed = 1;
  const step = async () => {
    const jobs = Array.from({ length: workers }, () => inversionJob(teacher, seed++, config));
    if (pool === undefined) await runJobHere(jobs[0]);
    else await pool.runInWorkers(jobs);
  };
  return { step, batchesPerStep: workers, perStep: config.iterations, dispose: async () => undefined };
}

/**
 * Times every runner's step in turn (main, 1 worker, 2 workers, main, ...) so that load from other
 * processes, which comes and goes, falls on all of them alike; medians per runner.
 */
async function interleaved(runners: [Runner, Timed][], steps: number, warmup: number): Promise<Map<Runner, StepTiming & { coresUsed: number }>> {
  for (let i = 0; i < warmup; i++) for (const [, t] of runners) await t.step();
  const all = new Map<Runner, number[]>(runners.map(([r]) => [r, []]));
  const cores = new Map<Runner, number[]>(runners.map(([r]) => [r, []]));
  for (let i = 0; i < steps; i++) {
    for (const [runner, t] of runners) {
      const cpu = process.cpuUsage();
      const start = performance.now();
      await t.step();
      const wall = performance.now() - start;
      all.get(runner)!.push(wall / t.perStep);
      cores.get(runner)!.push(cpuMs(cpu) / wall);
    }
  }
  return new Map(
    runners.map(([runner]) => {
      const ms = all.get(runner)!;
      return [runner, { medianMs: median(ms), minMs: Math.min(...ms), steps, warmup, allMs: ms, coresUsed: median(cores.get(runner)!) }];
    }),
  );
}

/**
 * CPU ms this process (main thread and its workers) used since `since`. Over wall time it says how
 * many cores the runner actually got: 2 workers on a machine where another process holds a core get
 * about 1, and then cannot be faster than 1 worker.
 */
function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
}

async function throughput(pool: WorkerPool | undefined, runner: Runner, teacher: SerializedModel, batches: number, config: InversionBatchConfig, round: number): Promise<ThroughputResult> {
  const jobs = Array.from({ length: batches }, (_, b) => inversionJob(teacher, 1000 * round + b, config));
  const cpu = process.cpuUsage();
  const start = performance.now();
  if (pool === undefined) for (const job of jobs) await runJobHere(job);
  else await pool.runInWorkers(jobs);
  const wallMs = performance.now() - start;
  return { runner, batches, iterations: config.iterations, wallS: wallMs / 1000, imagesPerSecond: (batches * BATCH * 1000) / wallMs, coresUsed: cpuMs(cpu) / wallMs };
}

function python(script: string, args: string[], threads: number): any {
  const out = execFileSync('/usr/bin/python3', [path.join(repoRoot(), 'bench', 'torch', script), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, OMP_NUM_THREADS: String(threads) },
  });
  return JSON.parse(out);
}

function torchAvailable(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const options = new Command()
    .option('--steps <n>', 'timed steps (inversion: timed rounds) per measurement', '10')
    .option('--resnet-steps <n>', 'timed ResNet-20 training steps per runner', '5')
    .option('--models <list>', `models whose training step is timed, of ${Object.keys(TRAIN_MODELS).join(',')}`, CPU_BENCH_MODEL_IDS.join(','))
    .option('--warmup <n>', 'untimed steps before timing', '2')
    .option('--round <n>', 'inversion iterations per timed round', '5')
    .option('--iterations <n>', 'iterations per synthesis batch (throughput)', '20')
    .option('--batches <n>', 'synthesis batches per round (throughput)', '4')
    .option('--rounds <n>', 'synthesis rounds (runners alternate within a round)', '2')
    .option('--bn-weight <x>', 'weight of the BN-statistics loss', '1')
    .option('--lr <x>', 'Adam learning rate on the pixels', '0.05')
    .option('--no-torch', 'skip PyTorch')
    .option('--seed <n>', 'seed of weights and data', '0')
    .parse()
    .opts<{ steps: string; resnetSteps: string; models: string; warmup: string; round: string; iterations: string; batches: string; rounds: string; bnWeight: string; lr: string; torch: boolean; seed: string }>();
  const steps = Number(options.steps);
  const trainModels = options.models.split(',').map((m) => m.trim()) as TrainModel[];
  for (const m of trainModels) if (!(m in TRAIN_MODELS)) throw new Error(`unknown model ${m}; known: ${Object.keys(TRAIN_MODELS).join(', ')}`);
  const stepsOf = (m: TrainModel) => (m === 'resnet20' ? Number(options.resnetSteps) : steps);
  const warmup = Number(options.warmup);
  const seed = Number(options.seed);
  const batches = Number(options.batches);
  const rounds = Number(options.rounds);
  const stepConfig: InversionBatchConfig = { iterations: Number(options.round), learningRate: Number(options.lr), bnWeight: Number(options.bnWeight) };
  const synthConfig: InversionBatchConfig = { ...stepConfig, iterations: Number(options.iterations) };
  const loadBefore = machineInfo().loadAverage;

  const backend = await initTensorBackend('wasm');
  log(`main thread: ${backend.detail}; load average ${loadBefore.join(' ')}`);
  const teacherModel = buildModel(LENET, seed);
  const teacher = await serializeModel(teacherModel);
  teacherModel.dispose();

  const stepResults: StepResult[] = [];
  const synthesis: ThroughputResult[] = [];
  const pools = new Map<Runner, WorkerPool | undefined>([['main thread', undefined]]);
  try {
    pools.set('1 worker', await WorkerPool.start({ size: 1, backend: 'wasm' }));
    pools.set('2 workers', await WorkerPool.start({ size: 2, backend: 'wasm' }));
    const runnerNames = [...pools.keys()];
    const works = [...trainModels.map((model) => ({ work: 'train' as const, model })), { work: 'inversion' as const, model: 'lenet5-bn' as const }];
    for (const { work, model } of works) {
      const m = TRAIN_MODELS[model];
      const workSteps = work === 'train' ? stepsOf(model) : steps;
      log(`${work} ${m.label}: ${runnerNames.join(', ')} interleaved, ${warmup} warm-up + ${workSteps} timed steps each`);
      const batch = randomBatch(m.spec, m.batch, seed);
      const timed: [Runner, Timed][] = [];
      for (const [runner, pool] of pools) {
        if (work === 'train') timed.push([runner, pool === undefined ? trainMainThread(m.spec, batch, seed) : await trainInPool(pool, m.spec, batch, seed)]);
        else timed.push([runner, inversionSteps(pool, teacher, stepConfig)]);
      }
      try {
        const timings = await interleaved(timed, workSteps, work === 'train' ? warmup : 1);
        for (const [runner, t] of timed) {
          const timing = timings.get(runner)!;
          stepResults.push({ work, model, runner, batchesPerStep: t.batchesPerStep, timing, coresUsed: timing.coresUsed, msPerBatchStep: timing.medianMs / t.batchesPerStep });
        }
      } finally {
        for (const [, t] of timed) await t.dispose();
      }
    }
    for (let round = 1; round <= rounds; round++) {
      log(`synthesis round ${round}/${rounds}: ${batches} batches × ${synthConfig.iterations} iterations per runner`);
      for (const [runner, pool] of pools) synthesis.push(await throughput(pool, runner, teacher, batches, synthConfig, round));
      if (options.torch && torchAvailable()) {
        for (const t of [1, 2]) {
          const r = python('synthesis.py', ['--threads', String(t), '--batch', String(BATCH), '--batches', String(batches), '--iterations', String(synthConfig.iterations), '--lr', String(synthConfig.learningRate), '--bn-weight', String(synthConfig.bnWeight), '--seed', String(seed + round)], t);
          synthesis.push({ runner: `PyTorch ${t}t`, batches, iterations: synthConfig.iterations, wallS: r.wallS, imagesPerSecond: r.imagesPerSecond });
        }
      }
    }
  } finally {
    for (const pool of pools.values()) await pool?.close();
  }

  const torch: { backend?: any } = {};
  if (options.torch && torchAvailable()) {
    log('PyTorch: training and inversion steps (bench/torch/backend.py), 1 and 2 threads');
    const torchModels = [...new Set<TrainModel>(['lenet5-bn', ...trainModels])].join(',');
    torch.backend = [1, 2].map((t) => python('backend.py', ['--threads', String(t), '--steps', String(steps), '--warmup', String(warmup), '--seed', String(seed), '--models', torchModels], t));
  } else if (options.torch) {
    log('PyTorch not importable by /usr/bin/python3; tfjs only');
  }

  const torchStepMs = (threads: number, work: 'train' | 'inversion', model: TrainModel): number | undefined =>
    torch.backend?.find((r: any) => r.threads === threads)?.results[model]?.[work]?.medianMs;
  const fasterTorch = (work: 'train' | 'inversion', model: TrainModel): number | undefined => {
    const times = [torchStepMs(1, work, model), torchStepMs(2, work, model)].filter((t): t is number => t !== undefined);
    return times.length > 0 ? Math.min(...times) : undefined;
  };
  const stepHeaders = ['work', 'runner', 'cores used', 'batches per step', 'ms/step (median)', 'ms per batch-step', 'PyTorch 1t ms', 'PyTorch 2t ms', 'ratio to faster PyTorch'];
  const stepRows: Cell[][] = stepResults.map((r) => {
    const best = fasterTorch(r.work, r.model);
    return [
      `${TRAIN_MODELS[r.model].label}: ${r.work === 'train' ? 'training step (SGD)' : 'inversion step (CE + BN stats)'}`,
      r.runner,
      r.coresUsed,
      r.batchesPerStep,
      r.timing.medianMs,
      r.msPerBatchStep,
      torchStepMs(1, r.work, r.model),
      torchStepMs(2, r.work, r.model),
      best === undefined ? undefined : r.msPerBatchStep / best,
    ];
  });
  printTable(
    `ms per step, median of ${steps} (ResNet-20: ${options.resnetSteps}; inversion: rounds of ${stepConfig.iterations} iterations, per iteration) after warm-up; wasm. ` +
      'PyTorch: bench/torch/backend.py (its inversion step is plain gradient descent on the pixels, ours Adam)',
    stepHeaders,
    stepRows,
    [0, 0, 2, 0, 0, 0, 1, 1, 2],
  );
  const synthRunners = [...new Set(synthesis.map((r) => r.runner))];
  const synthMedian = synthRunners.map((runner) => {
    const runs = synthesis.filter((r) => r.runner === runner);
    const cores = runs.flatMap((r) => (r.coresUsed === undefined ? [] : [r.coresUsed]));
    return { runner, rounds: runs.length, wallS: median(runs.map((r) => r.wallS)), imagesPerSecond: median(runs.map((r) => r.imagesPerSecond)), coresUsed: cores.length > 0 ? median(cores) : undefined };
  });
  const torchRates = synthMedian.filter((s) => s.runner.startsWith('PyTorch')).map((s) => s.imagesPerSecond);
  const bestTorchRate = torchRates.length > 0 ? Math.max(...torchRates) : undefined;
  const synthHeaders = ['runner', 'rounds', 'cores used', 'wall s (median)', 'images/s (median)', 'ratio to faster PyTorch'];
  const synthRows: Cell[][] = synthMedian.map((s) => [s.runner, s.rounds, s.coresUsed, s.wallS, s.imagesPerSecond, bestTorchRate === undefined ? undefined : s.imagesPerSecond / bestTorchRate]);
  printTable(
    `synthesis throughput: ${batches} batches of ${BATCH}, ${synthConfig.iterations} iterations each, per round; runners alternate within each round ` +
      '(images finished per second; ratio above 1 = faster than PyTorch)',
    synthHeaders,
    synthRows,
    [0, 0, 2, 1, 1, 2],
  );
  const loadAfter = machineInfo().loadAverage;
  log(`load average before ${loadBefore.join(' ')}, after ${loadAfter.join(' ')} (2 cores: above ~0.5 other work competes with these timings)`);

  const target = writeBenchResults('parallel', seed, { steps: stepResults, synthesis, synthesisMedians: synthMedian, torch }, {
    backend,
    settings: { steps, resnetSteps: Number(options.resnetSteps), trainModels, warmup, batch: BATCH, inversionRound: stepConfig, synthesis: synthConfig, batches, rounds },
    loadAverageBefore: loadBefore,
    tables: { steps: { headers: stepHeaders, rows: stepRows }, synthesis: { headers: synthHeaders, rows: synthRows } },
  });
  log(`results written to ${target}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
