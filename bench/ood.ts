/**
 * Out-of-distribution benchmark on Colored-MNIST: in training a digit's colour matches its label
 * with probability `--correlation`; in the test split colours are uniform and independent of the
 * label. ERM (plain cross-entropy training) vs DecAug on the same backbone, epochs and optimiser,
 * for several seeds; test top-1 as mean ± std (and top-1 on the training colouring for reference).
 *
 *   npm run bench:ood [-- --train 20000 --test 10000 --epochs 3 --seeds 1,2,3 --correlation 0.9]
 *
 * Writes bench/results/ood.json.
 */
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { loadConfig } from '../src/core/config/config';
import { loadBuiltinRaw } from '../src/core/data/builtin';
import type { ImageSet } from '../src/core/data/image-set';
import { toImageSet, type RawImageSet } from '../src/core/data/raw';
import type { ModelHandle, ModelSpec } from '../src/core/models/model-spec';
import { buildModel } from '../src/core/models/zoo';
import { SeededRandom } from '../src/core/random';
import { initTensorBackend } from '../src/core/tensors/backend';
import { evaluateClassifier } from '../src/core/training/evaluator';
import { trainClassifier } from '../src/core/training/trainer';
import { decAugConfigSchema, plugin as decAug } from '../src/plugins/decaug';
import { benchLogger, benchStageContext } from './support/progress';
import { writeBenchResults } from './support/results';
import { formatPercent, meanStd } from './support/stats';
import { printTable } from './support/table';

const METHODS = ['erm', 'decaug'] as const;
type Method = (typeof METHODS)[number];

const log = benchLogger('ood');

/** A seeded subset of a raw split as float images (only the subset is converted, to save memory). */
function rawSubset(raw: RawImageSet, count: number, seed: number, numClasses: number): ImageSet {
  const n = Math.min(count, raw.count);
  const order = n < raw.count ? new SeededRandom(seed).permutation(raw.count).subarray(0, n) : Int32Array.from({ length: n }, (_, i) => i);
  const size = raw.shape[0] * raw.shape[1] * raw.shape[2];
  const pixels = new Uint8Array(n * size);
  const labels = new Int32Array(n);
  const contexts = new Int32Array(n);
  order.forEach((j, i) => {
    pixels.set(raw.pixels.subarray(j * size, (j + 1) * size), i * size);
    labels[i] = raw.labels[j];
    contexts[i] = raw.contexts![j];
  });
  return toImageSet({ pixels, labels, contexts, count: n, shape: raw.shape }, numClasses);
}

async function main(): Promise<void> {
  const options = new Command()
    .option('--train <n>', 'training images (seeded subset of the 60,000)', '20000')
    .option('--test <n>', 'test images (seeded subset of the 10,000)', '10000')
    .option('--epochs <n>', 'epochs of both methods', '3')
    .option('--seeds <list>', 'seeds', '1,2,3')
    .option('--correlation <p>', 'probability that a training digit has its label colour', '0.9')
    .option('--width <w>', 'LeNet-5-BN width of the backbone', '1')
    .option('--batch <n>', 'batch size', '64')
    .option('--lr <x>', 'Adam learning rate (cosine decay)', '0.001')
    .parse()
    .opts<Record<string, string>>();
  const epochs = Number(options.epochs);
  const seeds = options.seeds.split(',').map(Number);
  const batchSize = Number(options.batch);
  const learningRate = Number(options.lr);
  const backend = await initTensorBackend((process.env.CONDENSE_BACKEND as 'wasm' | undefined) ?? 'wasm');
  log(`backend ${backend.name}`);
  const raw = loadBuiltinRaw('colored-mnist', { dataDir: loadConfig().dataDir, trainCorrelation: Number(options.correlation), seed: 0 });
  const numClasses = raw.classNames.length;
  const test = rawSubset(raw.test, Number(options.test), 0, numClasses);
  const spec: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 3], numClasses, width: Number(options.width) };
  const setup = {
    data: raw.provenance,
    trainImages: Math.min(Number(options.train), raw.train.count),
    testImages: test.count,
    backbone: spec,
    epochs,
    batchSize,
    optimizer: `adam, lr ${learningRate}, cosine decay, no augmentation`,
    decaug: 'branchUnits 64, weights 0.01/0.01/0.01, perturbation 1, no KD term',
    seeds,
  };
  console.log(`Setup: ${JSON.stringify(setup, null, 2)}`);

  const runs: Array<{ seed: number; test: Record<Method, number>; trainColouring: Record<Method, number>; seconds: Record<Method, number> }> = [];
  for (const seed of seeds) {
    const train = rawSubset(raw.train, setup.trainImages, seed, numClasses);
    const held = rawSubset(raw.train, 2000, seed + 1, numClasses);
    const run = { seed, test: {}, trainColouring: {}, seconds: {} } as (typeof runs)[number];
    for (const method of METHODS) {
      const started = Date.now();
      log(`seed ${seed}: ${method}`);
      let model: tf.LayersModel;
      if (method === 'erm') {
        model = buildModel(spec, seed);
        await trainClassifier(model, train, { epochs, batchSize, optimizer: 'adam', learningRate, seed: seed + 1000 });
      } else {
        // DecAug takes a teacher for its spec (and an optional KD term, off here).
        const shapeOnly: ModelHandle = { name: 'backbone', model: buildModel(spec, 0), spec };
        const config = decAugConfigSchema.parse({ epochs, batchSize, learningRate });
        model = (
          await decAug.distill({ teacher: shapeOnly, data: train }, config, benchStageContext(seed, log, `seed ${seed} decaug`, 5))
        ).student.model;
        shapeOnly.model.dispose();
      }
      run.test[method] = (await evaluateClassifier(model, test)).top1;
      run.trainColouring[method] = (await evaluateClassifier(model, held)).top1;
      run.seconds[method] = (Date.now() - started) / 1000;
      log(`seed ${seed}: ${method} test top-1 ${run.test[method].toFixed(4)}, train-colouring top-1 ${run.trainColouring[method].toFixed(4)} (${run.seconds[method].toFixed(0)} s)`);
      model.dispose();
    }
    runs.push(run);
  }
  const summary = Object.fromEntries(METHODS.map((m) => [m, { test: meanStd(runs.map((r) => r.test[m])), trainColouring: meanStd(runs.map((r) => r.trainColouring[m])) }]));
  printTable(
    `Colored-MNIST (train colour/label correlation ${options.correlation}; test colours uniform), LeNet-5-BN w${spec.width}, ${epochs} epochs, ${seeds.length} seeds`,
    ['method', 'test top-1 % (mean ± std)', ...seeds.map((s) => `seed ${s}`), 'train-colouring top-1 %', 'mean s'],
    METHODS.map((m) => [
      m,
      formatPercent(summary[m].test),
      ...runs.map((r) => (100 * r.test[m]).toFixed(2)),
      formatPercent(summary[m].trainColouring),
      meanStd(runs.map((r) => r.seconds[m])).mean,
    ]),
  );
  const file = writeBenchResults('ood', seeds[0], { setup, summary, runs }, { backend: backend.name, seeds });
  console.log(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
