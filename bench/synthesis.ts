/**
 * Data-free synthesis benchmark on MNIST: a LeNet-5-BN teacher; images made by `noise`,
 * DeepInversion, ADI and NaturalInversion with the same iteration budget; a half-width LeNet-5-BN
 * student distilled with `kd` on each synthetic set alone; top-1 on the official MNIST test split.
 * Also a student trained on the real training split, images per second, the Fréchet distance to real
 * test images in the teacher's penultimate space, and the time the input-only gradient path saves.
 *
 *   npm run bench:synthesis [-- --images 2560 --iterations 200 --seeds 1,2 --methods noise,deep-inversion,adi,natural-inversion]
 *
 * Writes bench/results/synthesis.json and a PNG grid per method and seed under bench/results/synthesis/.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { loadConfig } from '../src/core/config/config';
import { loadBuiltinDataset } from '../src/core/data/builtin';
import { randomSubset, type LabelledDataset } from '../src/core/data/image-set';
import type { ModelHandle, ModelSpec } from '../src/core/models/model-spec';
import { buildModel } from '../src/core/models/zoo';
import type { SynthesisPlugin } from '../src/core/plugins/contracts';
import { teacherFrechetDistance } from '../src/core/synthesis/synthesis-output';
import { initTensorBackend } from '../src/core/tensors/backend';
import { bnStatisticsLoss, tapBatchNormInputs, type TappedModel } from '../src/core/tensors/bn-taps';
import { inputGradientForward } from '../src/core/tensors/input-gradient';
import { evaluateClassifier } from '../src/core/training/evaluator';
import { crossEntropy, trainClassifier } from '../src/core/training/trainer';
import { plugin as deepInversion } from '../src/plugins/deep-inversion';
import { kdConfigSchema, plugin as kd } from '../src/plugins/kd';
import { plugin as naturalInversion } from '../src/plugins/natural-inversion';
import { plugin as noise } from '../src/plugins/noise';
import { repoRoot } from './support/machine';
import { benchLogger, benchStageContext } from './support/progress';
import { writeBenchResults } from './support/results';
import { formatPercent, meanStd } from './support/stats';
import { printTable } from './support/table';

const METHODS = ['noise', 'deep-inversion', 'adi', 'natural-inversion'] as const;
type Method = (typeof METHODS)[number];

const log = benchLogger('synthesis');

/**
 * The configs the benchmark gives each method: the same images, batch size and iterations per batch;
 * loss weights chosen for a 28×28 MNIST LeNet-5-BN teacher (printed with the results). The plugins'
 * own defaults are the papers' CIFAR settings.
 */
export function methodConfigs(common: { count: number; batchSize: number; iterations: number }): Record<Method, Record<string, unknown>> {
  const inversion = { ...common, learningRate: 0.15, warmupIterations: 20, jitter: 2, weights: { crossEntropy: 1, bnStatistics: 1, firstBnMultiplier: 10, tvL2: 3e-3, tvL1: 0, l2: 0.05 } };
  return {
    noise: { count: common.count, batchSize: common.batchSize },
    'deep-inversion': { ...inversion, mode: 'deep-inversion' },
    adi: { ...inversion, mode: 'adaptive', competition: 0.2 },
    'natural-inversion': { ...common, generatorChannels: 16, jitter: 1, weights: { crossEntropy: 1, bnStatistics: 1, tvL2: 3e-3, l2: 0 } },
  };
}

function synthesisStage(method: Method, config: Record<string, unknown>): { plugin: SynthesisPlugin<unknown>; config: unknown } {
  const plugin = (method === 'noise' ? noise : method === 'natural-inversion' ? naturalInversion : deepInversion) as SynthesisPlugin<unknown>;
  return { plugin, config: plugin.configSchema.parse(config) };
}

/** Median ms of one DeepInversion step (CE + BN statistics, gradient w.r.t. the images) through `forward`. */
async function inversionStepMs(forward: TappedModel, images: tf.Variable, labels: tf.Tensor1D, repeats: number): Promise<number> {
  const loss = (x: tf.Tensor): tf.Scalar => {
    const { logits, taps } = forward(x, { training: false });
    return tf.add(crossEntropy(logits as tf.Tensor2D, labels), bnStatisticsLoss(taps));
  };
  const times: number[] = [];
  for (let i = 0; i < repeats + 2; i++) {
    const started = performance.now();
    const grad = tf.grad(loss)(images);
    await grad.data();
    grad.dispose();
    if (i >= 2) times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

interface Options {
  count: number;
  iterations: number;
  batchSize: number;
  seeds: number[];
  methods: Method[];
  teacherEpochs: number;
  realEpochs: number;
  kdEpochs: number;
  kdCrop: number;
  studentWidth: number;
  parallel: number;
}

type MethodResult = { top1: number; imagesPerSecond: number; frechetDistance: number; targetAgreement?: number; synthesisSeconds: number; kdSeconds: number };
type Row = {
  seed: number;
  teacherTop1: number;
  realStudentTop1: number;
  realFrechet: number;
  inputOnly: { fullMs: number; inputOnlyMs: number };
  methods: Partial<Record<Method, MethodResult>>;
};

const TEACHER_SPEC: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 };

function parseOptions(): Options & { childOut?: string } {
  const o = new Command()
    .option('--images <n>', 'images each method makes', '2560')
    .option('--iterations <n>', 'optimisation iterations per batch (DeepInversion, ADI, NaturalInversion alike)', '200')
    .option('--batch <n>', 'synthesis batch size', '256')
    .option('--seeds <list>', 'seeds', '1,2')
    .option('--methods <list>', 'methods to run', METHODS.join(','))
    .option('--teacher-epochs <n>', 'teacher epochs on the 60,000 training images', '2')
    .option('--real-epochs <n>', 'epochs of the student trained on real data', '2')
    .option('--kd-epochs <n>', 'kd epochs on each synthetic set (the student needs many steps on 2,560 images)', '100')
    .option('--kd-crop <n>', 'kd random-crop padding (teacher sees the same crops)', '2')
    .option('--student-width <w>', 'LeNet-5-BN width of the student', '0.5')
    .option('--parallel <n>', 'seeds run at once, one process each (1 wasm thread per process)', String(Math.min(2, os.cpus().length)))
    .option('--child-out <file>', '(internal) run the seeds in this process and write their rows to this file')
    .parse()
    .opts<Record<string, string>>();
  const methods = o.methods.split(',') as Method[];
  for (const m of methods) if (!METHODS.includes(m)) throw new Error(`unknown method ${m}; choose from ${METHODS.join(', ')}`);
  return {
    count: Number(o.images),
    iterations: Number(o.iterations),
    batchSize: Number(o.batch),
    seeds: o.seeds.split(',').map(Number),
    methods,
    teacherEpochs: Number(o.teacherEpochs),
    realEpochs: Number(o.realEpochs),
    kdEpochs: Number(o.kdEpochs),
    kdCrop: Number(o.kdCrop),
    studentWidth: Number(o.studentWidth),
    parallel: Math.max(1, Number(o.parallel)),
    childOut: o.childOut,
  };
}

/** Everything measured for one seed: teacher, real-data student, each method's synthesis and kd student. */
async function runSeed(seed: number, o: Options, data: LabelledDataset, pictures: string): Promise<Row> {
  const studentSpec: ModelSpec = { ...TEACHER_SPEC, width: o.studentWidth };
  log(`seed ${seed}: teacher`);
  const teacherModel = buildModel(TEACHER_SPEC, seed);
  await trainClassifier(teacherModel, data.train, { epochs: o.teacherEpochs, batchSize: 128, optimizer: 'adam', learningRate: 0.002, seed });
  const teacher: ModelHandle = { name: 'teacher', model: teacherModel, spec: TEACHER_SPEC };
  const teacherTop1 = (await evaluateClassifier(teacherModel, data.test)).top1;
  log(`seed ${seed}: teacher top-1 ${(100 * teacherTop1).toFixed(2)}`);

  const labels = tf.tensor1d(Int32Array.from({ length: o.batchSize }, (_, i) => i % 10), 'int32');
  const images = tf.variable(tf.randomUniform([o.batchSize, 28, 28, 1], 0, 1, 'float32', seed));
  const fullMs = await inversionStepMs(tapBatchNormInputs(teacherModel), images, labels, 10);
  const inputOnlyMs = await inversionStepMs(inputGradientForward(teacherModel), images, labels, 10);
  tf.dispose([labels, images]);
  log(`seed ${seed}: inversion step, batch ${o.batchSize}: ${fullMs.toFixed(1)} ms with filter gradients, ${inputOnlyMs.toFixed(1)} ms input-only`);

  log(`seed ${seed}: student on real data`);
  const realStudent = buildModel(studentSpec, seed + 1000);
  await trainClassifier(realStudent, data.train, { epochs: o.realEpochs, batchSize: 128, optimizer: 'adam', learningRate: 0.002, seed: seed + 2000 });
  const realStudentTop1 = (await evaluateClassifier(realStudent, data.test)).top1;
  realStudent.dispose();
  const realFrechet = await teacherFrechetDistance(teacherModel, randomSubset(data.train, o.count, seed), randomSubset(data.test, o.count, seed), new AbortController().signal);
  log(`seed ${seed}: real-data student ${(100 * realStudentTop1).toFixed(2)}; Fréchet distance real train vs test ${realFrechet.toFixed(2)}`);
  const row: Row = { seed, teacherTop1, realStudentTop1, realFrechet, inputOnly: { fullMs, inputOnlyMs }, methods: {} };

  const configs = methodConfigs({ count: o.count, batchSize: o.batchSize, iterations: o.iterations });
  for (const method of o.methods) {
    log(`seed ${seed}: ${method}`);
    const { plugin, config } = synthesisStage(method, configs[method]);
    const synth = await plugin.synthesize({ teacher, reference: data.test }, config, benchStageContext(seed, log, `seed ${seed} ${method}`));
    for (const image of synth.images ?? []) fs.writeFileSync(path.join(pictures, `${method}-seed${seed}.png`), image.png);
    const kdStarted = Date.now();
    const kdConfig = kdConfigSchema.parse({ student: { width: o.studentWidth }, epochs: o.kdEpochs, batchSize: 128, learningRate: 0.001, augment: { flip: false, cropPadding: o.kdCrop } });
    const student = (await kd.distill({ teacher, data: synth.dataset }, kdConfig, benchStageContext(seed, log, `seed ${seed} ${method} kd`))).student.model;
    const top1 = (await evaluateClassifier(student, data.test)).top1;
    student.dispose();
    row.methods[method] = {
      top1,
      imagesPerSecond: synth.metrics.imagesPerSecond,
      frechetDistance: synth.metrics.frechetDistance,
      targetAgreement: synth.metrics.targetAgreement,
      synthesisSeconds: synth.metrics.seconds,
      kdSeconds: (Date.now() - kdStarted) / 1000,
    };
    log(`seed ${seed}: ${method} student ${(100 * top1).toFixed(2)}%, ${synth.metrics.imagesPerSecond.toFixed(2)} img/s, FD ${synth.metrics.frechetDistance?.toFixed(2)}`);
  }
  teacherModel.dispose();
  return row;
}

/** Runs each seed in a child process of this script, `parallel` at a time, and collects their rows. */
async function runSeedsInChildren(o: Options): Promise<Row[]> {
  const rows: Row[] = [];
  const queue = [...o.seeds];
  const script = process.argv[1];
  const passOn = process.argv.slice(2).filter((a, i, all) => !(a === '--seeds' || all[i - 1] === '--seeds' || a.startsWith('--seeds=') || a === '--parallel' || all[i - 1] === '--parallel' || a.startsWith('--parallel=')));
  const runOne = async (seed: number): Promise<void> => {
    const out = path.join(os.tmpdir(), `bench-synthesis-${process.pid}-${seed}.json`);
    await new Promise<void>((resolve, reject) => {
      const child = fork(script, [...passOn, '--seeds', String(seed), '--parallel', '1', '--child-out', out], { stdio: 'inherit' });
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`seed ${seed} exited with ${code}`))));
    });
    rows.push(...(JSON.parse(fs.readFileSync(out, 'utf8')) as Row[]));
    fs.rmSync(out);
  };
  const workers = Array.from({ length: Math.min(o.parallel, queue.length) }, async () => {
    for (let seed = queue.shift(); seed !== undefined; seed = queue.shift()) await runOne(seed);
  });
  await Promise.all(workers);
  return rows.sort((a, b) => a.seed - b.seed);
}

async function main(): Promise<void> {
  const o = parseOptions();
  const backend = await initTensorBackend((process.env.CONDENSE_BACKEND as 'wasm' | undefined) ?? 'wasm');
  const pictures = path.join(repoRoot(), 'bench', 'results', 'synthesis');
  fs.mkdirSync(pictures, { recursive: true });

  const started = Date.now();
  if (o.childOut !== undefined || o.parallel === 1) {
    const data = await loadBuiltinDataset('mnist', { dataDir: loadConfig().dataDir });
    const rows: Row[] = [];
    for (const seed of o.seeds) rows.push(await runSeed(seed, o, data, pictures));
    if (o.childOut !== undefined) {
      fs.writeFileSync(o.childOut, JSON.stringify(rows));
      return;
    }
    report(o, backend.name, data.provenance, rows, started);
    return;
  }
  log(`backend ${backend.name}; ${o.seeds.length} seeds, ${o.parallel} processes at once`);
  const rows = await runSeedsInChildren(o);
  const data = await loadBuiltinDataset('mnist', { dataDir: loadConfig().dataDir });
  report(o, backend.name, data.provenance, rows, started);
}

function report(o: Options, backendName: string, provenance: string, rows: Row[], started: number): void {
  const configs = methodConfigs({ count: o.count, batchSize: o.batchSize, iterations: o.iterations });
  const setup = {
    data: provenance,
    teacher: TEACHER_SPEC,
    teacherTraining: `${o.teacherEpochs} epochs, Adam lr 0.002 cosine, batch 128, all 60,000 training images (one teacher per seed)`,
    student: { ...TEACHER_SPEC, width: o.studentWidth },
    realStudentTraining: `${o.realEpochs} epochs on the 60,000 real training images, Adam lr 0.002 cosine, batch 128`,
    synthesisBudget: { imagesPerMethod: o.count, batchSize: o.batchSize, iterationsPerBatch: o.iterations, batches: Math.ceil(o.count / o.batchSize) },
    methodConfigs: Object.fromEntries(o.methods.map((m) => [m, configs[m]])),
    kd: `kd plugin on the synthetic set alone: ${o.kdEpochs} epochs, batch 128, Adam lr 0.001 cosine, T 4, alpha 0.9, crop padding ${o.kdCrop}`,
    processes: `${Math.min(o.parallel, o.seeds.length)} at once (one seed each, 1 wasm thread each)`,
    seeds: o.seeds,
  };
  console.log(`Setup: ${JSON.stringify(setup, null, 2)}`);
  const over = (f: (r: Row) => number) => meanStd(rows.map(f));
  const summary = {
    teacherTop1: over((r) => r.teacherTop1),
    realStudentTop1: over((r) => r.realStudentTop1),
    realFrechet: over((r) => r.realFrechet),
    methods: Object.fromEntries(
      o.methods.map((m) => [
        m,
        {
          top1: over((r) => r.methods[m]!.top1),
          imagesPerSecond: over((r) => r.methods[m]!.imagesPerSecond),
          frechetDistance: over((r) => r.methods[m]!.frechetDistance),
          targetAgreement: over((r) => r.methods[m]!.targetAgreement ?? Number.NaN),
        },
      ]),
    ),
    inputOnlyGradient: { fullMs: over((r) => r.inputOnly.fullMs), inputOnlyMs: over((r) => r.inputOnly.inputOnlyMs) },
    totalMinutes: (Date.now() - started) / 60000,
  };
  printTable(
    `MNIST test top-1, LeNet-5-BN teacher → LeNet-5-BN w${o.studentWidth} student by kd on ${o.count} synthetic images; ${o.iterations} iterations per batch of ${o.batchSize}; ${o.seeds.length} seeds (mean ± std)`,
    ['model / data', 'top-1 %', ...o.seeds.map((s) => `seed ${s}`), 'images/s', 'Fréchet dist.', 'target agreement'],
    [
      ['teacher (real data)', formatPercent(summary.teacherTop1), ...rows.map((r) => (100 * r.teacherTop1).toFixed(2)), null, null, null],
      ['student on real data', formatPercent(summary.realStudentTop1), ...rows.map((r) => (100 * r.realStudentTop1).toFixed(2)), null, summary.realFrechet.mean.toFixed(2), null],
      ...o.methods.map((m) => [
        `kd on ${m}`,
        formatPercent(summary.methods[m].top1),
        ...rows.map((r) => (100 * r.methods[m]!.top1).toFixed(2)),
        summary.methods[m].imagesPerSecond.mean.toFixed(2),
        summary.methods[m].frechetDistance.mean.toFixed(2),
        Number.isNaN(summary.methods[m].targetAgreement.mean) ? null : summary.methods[m].targetAgreement.mean.toFixed(3),
      ]),
    ],
  );
  const { fullMs, inputOnlyMs } = summary.inputOnlyGradient;
  printTable(`One inversion step (CE + BN statistics, gradient w.r.t. ${o.batchSize} images), ${backendName}, mean of seeds`, ['path', 'ms/step'], [
    ['layers forward (filter gradients computed too)', fullMs.mean.toFixed(1)],
    ['input-only gradient path', inputOnlyMs.mean.toFixed(1)],
    ['time saved', `${(100 * (1 - inputOnlyMs.mean / fullMs.mean)).toFixed(1)} %`],
  ]);
  console.log(`The real-data Fréchet distance is real training vs real test images (${o.count} each), the floor to compare with.`);
  console.log(`total ${summary.totalMinutes.toFixed(1)} min`);
  const file = writeBenchResults('synthesis', o.seeds[0], { setup, summary, runs: rows }, { backend: backendName, seeds: o.seeds });
  console.log(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
