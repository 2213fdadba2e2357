import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { PluginInputError, StageCancelledError, type StageCheckpoint } from '../../src/core/plugins/contracts';
import { classBalancedTargets } from '../../src/core/synthesis/targets';
import type { ImageSet } from '../../src/core/data/image-set';
import { SeededRandom } from '../../src/core/random';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { trainClassifier } from '../../src/core/training/trainer';
import { batchSeed, synthesizeBatch } from '../../src/plugins/natural-inversion/batch';
import { naturalInversionConfigSchema, plugin, prepareTeacher, type NaturalInversionConfig } from '../../src/plugins/natural-inversion';
import { predictLogits, stageContext, tinyConvNet } from './support/stage';

// wasm, the production backend: the per-batch generator and decoder need filter gradients, and tfjs'
// cpu Conv2DBackpropFilter is ~100× slower than the wasm one registered by initTensorBackend.
beforeAll(async () => {
  await initTensorBackend('wasm');
});

const shape: [number, number, number] = [10, 10, 1];
const numClasses = 4;

/** conv3×3(4)-BN-ReLU-pool-conv3×3(8)-BN-ReLU-flatten-dense, untrained. */
function tinyBnNet(seed: number): tf.LayersModel {
  const input = tf.input({ shape });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: tf.initializers.heNormal({ seed }) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ momentum: 0.9 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', kernelInitializer: tf.initializers.heNormal({ seed: seed + 1 }) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ momentum: 0.9 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.flatten().apply(x) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: numClasses, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }) }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

/** A 4-class task the tiny net learns in a second: class k has its k-th 5×5 quadrant bright on a dark background. */
function quadrantImages(count: number, seed: number): ImageSet {
  const random = new SeededRandom(seed);
  const images = new Float32Array(count * 100);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const k = i % numClasses;
    labels[i] = k;
    for (let y = 0; y < 10; y++) {
      for (let x = 0; x < 10; x++) {
        const inside = y >= 5 === k >= 2 && x >= 5 === (k % 2 === 1);
        images[i * 100 + y * 10 + x] = inside ? 0.6 + 0.4 * random.next() : 0.3 * random.next();
      }
    }
  }
  return { images, labels, count, shape, numClasses };
}

/** The tiny net trained on quadrants: a confident teacher whose BN running statistics describe real images. */
async function trainedTeacher(seed: number): Promise<tf.LayersModel> {
  const model = tinyBnNet(seed);
  await trainClassifier(model, quadrantImages(400, seed), { epochs: 2, batchSize: 32, optimizer: 'adam', learningRate: 0.01, schedule: 'constant', seed });
  return model;
}

/**
 * Small and fast settings: generator and FTP learning rates 3× the paper's so 60 iterations are enough,
 * and no jitter (a 1-pixel roll is 10% of a 10×10 image; it makes the tiny run's loss jump).
 */
function tinyConfig(overrides: Partial<NaturalInversionConfig> = {}): NaturalInversionConfig {
  return naturalInversionConfigSchema.parse({
    count: 10,
    batchSize: 5,
    iterations: 60,
    latentSize: 8,
    generatorChannels: 8,
    generatorLearningRate: 3e-3,
    ftpLearningRate: 1.5e-3,
    jitter: 0,
    ...overrides,
  });
}

/** A checkpoint slot in memory that records every save. */
function memoryCheckpoint(every: number, initial?: Buffer): StageCheckpoint & { saves: Array<{ state: Buffer; step: number }> } {
  let stored = initial;
  const saves: Array<{ state: Buffer; step: number }> = [];
  return {
    every,
    saves,
    load: async () => stored,
    save: async (state, step) => {
      stored = state;
      saves.push({ state, step });
    },
  };
}

describe('natural-inversion', () => {
  const teacher = { name: 'tiny-bn', model: undefined as unknown as tf.LayersModel };
  beforeAll(async () => {
    teacher.model = await trainedTeacher(3);
  });
  afterAll(() => teacher.model.dispose());

  it('makes images in [0, 1] that the teacher labels as their targets, lowering the loss, with no tensors left', async () => {
    const config = tinyConfig();
    const ctx = stageContext(7);
    const before = tf.memory().numTensors;
    const out = await plugin.synthesize({ teacher }, config, ctx);
    expect(tf.memory().numTensors).toBe(before);

    const set = out.dataset;
    expect([set.count, set.numClasses, set.shape]).toEqual([10, numClasses, shape]);
    expect(Array.from(set.labels)).toEqual(Array.from(classBalancedTargets(0, 10, numClasses)));
    expect(set.images.every((v) => v >= 0 && v <= 1)).toBe(true);
    // Not a constant image: the decoder made structure.
    expect(Math.max(...set.images) - Math.min(...set.images)).toBeGreaterThan(0.2);
    const logits = await predictLogits(teacher.model, set.images, shape);
    let agree = 0;
    for (let i = 0; i < set.count; i++) {
      const row = Array.from(logits.subarray(i * numClasses, (i + 1) * numClasses));
      if (row.indexOf(Math.max(...row)) === set.labels[i]) agree++;
    }
    expect(agree / set.count).toBeGreaterThanOrEqual(0.9);
    expect(out.metrics.targetAgreement).toBeGreaterThanOrEqual(0.9);
    expect(out.metrics.imagesMade).toBe(10);
    expect(out.metrics.featureScales).toBe(2); // 10×10 (the first ReLU) and 5×5 (the second ReLU)

    // One report per iteration, global steps 1..120; a batch's images count once its last iteration ran.
    const iterationReports = ctx.reports;
    expect(iterationReports.map((r) => r.step)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    expect(ctx.reports.every((r) => r.total === 120)).toBe(true);
    expect([0, 58, 59, 60, 119].map((i) => iterationReports[i].metrics!.imagesMade)).toEqual([0, 0, 5, 5, 10]);
    expect(Object.keys(iterationReports[0].metrics!).sort()).toEqual(['bnStatistics', 'crossEntropy', 'imagesMade', 'l2', 'loss', 'tvL2']);
    for (const batch of [iterationReports.slice(0, 60), iterationReports.slice(60)]) {
      const losses = batch.map((r) => r.metrics!.loss);
      expect(Math.min(...losses.slice(-5))).toBeLessThan(0.25 * losses[0]);
    }
    expect(out.metrics.meanBestLoss).toBeLessThan(0.25 * iterationReports[0].metrics!.loss);
    expect(out.images?.[0].name).toBe('natural-inversion-samples.png');
  });

  it('keeps memory flat across iterations of a batch', async () => {
    const prepared = prepareTeacher(teacher);
    const counts: number[] = [];
    const before = tf.memory().numTensors;
    const config = tinyConfig({ iterations: 6 });
    await synthesizeBatch(prepared, classBalancedTargets(0, 4, numClasses), 1, { ...config, weights: { ...config.weights, tvL1: 0, firstBnMultiplier: 1, competition: 0, competitionTemperature: 1 } }, {
      signal: new AbortController().signal,
      describe: 'batch 1 of 1',
      onIteration: () => counts.push(tf.memory().numTensors),
    });
    expect(new Set(counts).size).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('resumes from a checkpoint with the same remaining batches as an uninterrupted run', async () => {
    // With jitter, so the resumed run must also re-derive each batch's jitter stream.
    const config = tinyConfig({ count: 12, batchSize: 4, iterations: 4, jitter: 1, flip: true });
    const full = memoryCheckpoint(4);
    const whole = await plugin.synthesize({ teacher }, config, { ...stageContext(21), checkpoint: full });
    expect(full.saves.map((s) => s.step)).toEqual([4, 8, 12]);

    // A worker that died after batch 1: the new one starts from its checkpoint.
    const resumedCtx = { ...stageContext(21), checkpoint: memoryCheckpoint(4, full.saves[0].state) };
    const resumed = await plugin.synthesize({ teacher }, config, resumedCtx);
    expect(resumedCtx.reports[0].step).toBe(5);
    expect(Buffer.from(resumed.dataset.images.buffer).equals(Buffer.from(whole.dataset.images.buffer))).toBe(true);

    // Another seed makes other images; a checkpoint of another config is refused.
    const other = await plugin.synthesize({ teacher }, tinyConfig({ count: 4, batchSize: 4, iterations: 4 }), stageContext(22));
    expect(other.dataset.images.some((v, i) => v !== whole.dataset.images[i])).toBe(true);
    await expect(plugin.synthesize({ teacher }, tinyConfig({ count: 12, batchSize: 6, iterations: 4 }), { ...stageContext(21), checkpoint: memoryCheckpoint(4, full.saves[0].state) })).rejects.toThrow(
      /does not match this config/,
    );
  });

  it('derives a different seed for every batch and seed', () => {
    const seeds = new Set<number>();
    for (const seed of [0, 1, 2]) for (let b = 0; b < 50; b++) seeds.add(batchSeed(seed, b));
    expect(seeds.size).toBe(150);
  });

  it('stops when the run is cancelled, before or during a batch, leaving no tensors', async () => {
    const aborted = new AbortController();
    aborted.abort();
    await expect(plugin.synthesize({ teacher }, tinyConfig(), stageContext(1, aborted.signal))).rejects.toBeInstanceOf(StageCancelledError);

    const controller = new AbortController();
    const ctx = stageContext(1, controller.signal);
    const report = ctx.report;
    ctx.report = (p) => {
      report(p);
      if (p.step === 3) controller.abort();
    };
    const before = tf.memory().numTensors;
    await expect(plugin.synthesize({ teacher }, tinyConfig(), ctx)).rejects.toBeInstanceOf(StageCancelledError);
    expect(ctx.reports.at(-1)!.step).toBe(3);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a teacher without BatchNorm, or without feature maps, with a message to act on', async () => {
    const plain = { name: 'plain', model: tinyConvNet(shape, numClasses, 1) };
    await expect(plugin.synthesize({ teacher: plain }, tinyConfig(), stageContext(1))).rejects.toThrow(PluginInputError);
    await expect(plugin.synthesize({ teacher: plain }, tinyConfig(), stageContext(1))).rejects.toThrow(/needs a teacher with BatchNormalization layers.*plain has none/);
    plain.model.dispose();

    const flat = tf.sequential({
      layers: [tf.layers.flatten({ inputShape: shape }), tf.layers.dense({ units: 8 }), tf.layers.batchNormalization(), tf.layers.dense({ units: numClasses })],
    });
    await expect(plugin.synthesize({ teacher: { name: 'mlp', model: flat } }, tinyConfig(), stageContext(1))).rejects.toThrow(
      /natural-inversion cannot use teacher mlp: .*no layer with a 4-D/,
    );
    flat.dispose();
  });

  it('names the iteration and what to lower when the loss is not finite', async () => {
    const broken = { name: 'broken', model: tinyBnNet(5) };
    const bn = broken.model.layers.find((l) => l.getClassName() === 'BatchNormalization')!;
    bn.setWeights(bn.getWeights().map((w, i) => (i === 3 ? tf.fill(w.shape, NaN) : w)));
    const before = tf.memory().numTensors;
    await expect(plugin.synthesize({ teacher: broken }, tinyConfig(), stageContext(1))).rejects.toThrow(
      /loss became NaN at iteration 1 of batch 1 of 2; lower generatorLearningRate, ftpLearningRate or acsLearningRate/,
    );
    expect(tf.memory().numTensors).toBe(before);
    broken.model.dispose();
  });
});

describe('natural-inversion config', () => {
  it('has the defaults declared in plugins.json', () => {
    const declared = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../plugins.json'), 'utf8')) as Array<{ name: string; defaults: unknown }>;
    expect(naturalInversionConfigSchema.parse({})).toEqual(declared.find((d) => d.name === 'natural-inversion')!.defaults);
    expect(naturalInversionConfigSchema.parse({})).toMatchObject({
      count: 2560,
      batchSize: 256,
      iterations: 2000,
      generatorLearningRate: 1e-3,
      ftpLearningRate: 5e-4,
      acsLearningRate: 5e-2,
      weights: { crossEntropy: 1, bnStatistics: 10, tvL2: 6e-3, l2: 1.5e-5 },
      jitter: 2,
      flip: false,
      acsInit: { mean: 5, std: 1 },
    });
  });

  it('rejects unknown keys, also nested, and values out of range', () => {
    expect(naturalInversionConfigSchema.safeParse({ iteratons: 10 }).success).toBe(false);
    expect(naturalInversionConfigSchema.safeParse({ weights: { tv: 1 } }).success).toBe(false);
    expect(naturalInversionConfigSchema.safeParse({ acsLearningRate: 0 }).success).toBe(false);
    expect(naturalInversionConfigSchema.safeParse({ iterations: 1.5 }).success).toBe(false);
    expect(naturalInversionConfigSchema.safeParse({ acsInit: { mean: -1 } }).success).toBe(false);
    expect(naturalInversionConfigSchema.parse({ weights: { bnStatistics: 3 } }).weights).toEqual({ crossEntropy: 1, bnStatistics: 3, tvL2: 6e-3, l2: 1.5e-5 });
  });

  it('describes every field', () => {
    const json = naturalInversionConfigSchema.toJSONSchema() as { properties: Record<string, { description?: string; properties?: Record<string, { description?: string }> }> };
    for (const [key, field] of Object.entries(json.properties)) {
      expect([key, typeof field.description]).toEqual([key, 'string']);
      for (const [inner, sub] of Object.entries(field.properties ?? {})) expect([inner, typeof sub.description]).toEqual([inner, 'string']);
    }
  });
});
