import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ModelHandle } from '../../src/core/models/model-spec';
import { buildModel } from '../../src/core/models/zoo';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { PluginInputError, StageCancelledError, type StageCheckpoint } from '../../src/core/plugins/contracts';
import { SeededRandom } from '../../src/core/random';
import { AdiStudent } from '../../src/plugins/deep-inversion/adi-student';
import { deepInversionConfigSchema, plugin, type DeepInversionConfig } from '../../src/plugins/deep-inversion';
import { quadrantImages, trainedBnTeacher } from '../synthesis/support';
import { stageContext, tinyConvNet } from './support/stage';

const SHAPE: [number, number, number] = [8, 8, 1];
let teacher: ModelHandle;

beforeAll(async () => {
  // wasm: the cpu backend's filter gradients make the ADI student's KD steps ~50× slower.
  await initTensorBackend('wasm');
  teacher = { name: 'quadrants', model: await trainedBnTeacher(SHAPE, 3, 41) };
});

afterAll(() => teacher.model.dispose());

const STUDENT = { architecture: 'vgg-bn' as const, depth: 1, width: 0.25 };

/**
 * Settings for the 8×8 quadrant teacher: a 1-pixel jitter (2 would move a quadrant by half its side)
 * and BN weight 1 (its two small BN layers are matched well before the cross-entropy at 10).
 */
function config(overrides: Record<string, unknown>): DeepInversionConfig {
  return deepInversionConfigSchema.parse({ count: 12, batchSize: 6, iterations: 30, jitter: 1, weights: { bnStatistics: 1 }, student: STUDENT, ...overrides });
}

/** An in-memory checkpoint slot. */
function memoryCheckpoint(every: number): StageCheckpoint & { saves: number[] } {
  let stored: Buffer | undefined;
  const saves: number[] = [];
  return {
    every,
    saves,
    load: async () => stored,
    save: async (state, step) => {
      stored = Buffer.from(state);
      saves.push(step);
    },
  };
}

test('the schema defaults are the registry defaults, and bad configs are refused', () => {
  const manifest = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../plugins.json'), 'utf8')) as Array<{ name: string; defaults: unknown }>;
  expect(deepInversionConfigSchema.parse({})).toEqual(manifest.find((p) => p.name === 'deep-inversion')!.defaults);
  expect(() => deepInversionConfigSchema.parse({ iterations: 0 })).toThrow();
  expect(() => deepInversionConfigSchema.parse({ weights: { tv: 1 } })).toThrow();
  expect(() => deepInversionConfigSchema.parse({ mode: 'dream' })).toThrow();
  expect(() => deepInversionConfigSchema.parse({ beta1: 1 })).toThrow();
});

test('makes class-balanced images the teacher labels as their targets, with progress and flat memory', async () => {
  const before = tf.memory().numTensors;
  const ctx = stageContext(3);
  const out = await plugin.synthesize({ teacher }, config({}), ctx);
  expect(tf.memory().numTensors).toBe(before);
  expect(out.dataset.count).toBe(12);
  expect(Array.from(out.dataset.labels)).toEqual(Array.from({ length: 12 }, (_, i) => i % 3));
  expect(out.metrics.targetAgreement).toBeGreaterThanOrEqual(0.9);
  expect(out.dataset.images.every((v) => v >= 0 && v <= 1)).toBe(true);
  expect(out.metrics.finalLoss).toBeGreaterThan(0);
  expect(out.metrics.bnStatistics).toBeGreaterThan(0);
  expect(out.metrics.studentAgreement).toBeUndefined();
  expect(out.images?.[0].name).toBe('deep-inversion-samples.png');
  expect(ctx.reports.map((r) => r.step)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  expect(ctx.reports.every((r) => r.total === 60)).toBe(true);
  const first = ctx.reports[0].metrics!;
  expect(Object.keys(first).sort()).toEqual(['bnStatistics', 'crossEntropy', 'imagesMade', 'loss', 'tvL2']);
  // The loss of each batch falls: compare the first and last iteration of batch 1.
  expect(ctx.reports[29].metrics!.loss).toBeLessThan(first.loss);
  expect(ctx.reports[30].metrics!.imagesMade).toBe(6);
});

test('a teacher without BatchNorm is refused, except in deep-dream mode', async () => {
  const plain: ModelHandle = { name: 'plain', model: tinyConvNet(SHAPE, 3, 7) };
  await expect(plugin.synthesize({ teacher: plain }, config({}), stageContext(1))).rejects.toThrow(PluginInputError);
  await expect(plugin.synthesize({ teacher: plain }, config({ mode: 'adaptive' }), stageContext(1))).rejects.toThrow(/no BatchNormalization layers.*deep-dream/);
  const ctx = stageContext(1);
  const out = await plugin.synthesize({ teacher: plain }, config({ mode: 'deep-dream', count: 6, iterations: 20 }), ctx);
  expect(out.metrics.targetAgreement).toBeGreaterThanOrEqual(0.8);
  expect(out.metrics.bnStatistics).toBeUndefined();
  expect(ctx.reports[0].metrics!.bnStatistics).toBeUndefined();
  plain.model.dispose();
});

test('the ADI student is trained by KD: its weights change and it agrees more with the teacher', async () => {
  const model = buildModel({ architecture: 'vgg-bn', depth: 1, width: 0.25, inputShape: SHAPE, numClasses: 3 }, 5);
  const student = new AdiStudent(model, { stepsPerBatch: 40, batchSize: 24, learningRate: 1e-2, temperature: 3 });
  const data = quadrantImages(48, SHAPE, 3, 99);
  const logits = tf.tidy(() => (teacher.model.predict(tf.tensor4d(data.images, [48, ...SHAPE])) as tf.Tensor).dataSync() as Float32Array);
  const weightsBefore = model.getWeights().map((w) => w.dataSync().slice());
  const agreementBefore = await student.agreement(data.images, logits, SHAPE, 3);
  const tensors = tf.memory().numTensors;
  await student.train({ images: data.images, teacherLogits: logits, count: 48, shape: SHAPE, numClasses: 3 }, new SeededRandom(1));
  expect(tf.memory().numTensors).toBe(tensors);
  const agreementAfter = await student.agreement(data.images, logits, SHAPE, 3);
  expect(agreementAfter).toBeGreaterThanOrEqual(0.9);
  expect(agreementAfter).toBeGreaterThan(agreementBefore);
  const changed = model.getWeights().filter((w, i) => w.dataSync().some((v, k) => v !== weightsBefore[i][k])).length;
  expect(changed).toBe(weightsBefore.length);
  // serialize / restore round trip.
  const saved = await student.serialize();
  const twin = new AdiStudent(buildModel({ architecture: 'vgg-bn', depth: 1, width: 0.25, inputShape: SHAPE, numClasses: 3 }, 6), { stepsPerBatch: 1, batchSize: 4, learningRate: 1e-2, temperature: 3 });
  twin.restore(saved);
  expect(await twin.serialize()).toEqual(saved);
  twin.dispose();
  student.dispose();
});

test('adaptive mode trains its student between batches, reports its agreement, and leaves memory flat', async () => {
  const before = tf.memory().numTensors;
  const ctx = stageContext(4);
  const cfg = config({ mode: 'adaptive', count: 18, iterations: 20, studentTraining: { stepsPerBatch: 30, batchSize: 12, learningRate: 1e-2 } });
  const out = await plugin.synthesize({ teacher }, cfg, ctx);
  expect(tf.memory().numTensors).toBe(before);
  expect(out.images?.[0].name).toBe('adaptive-samples.png');
  expect(out.metrics.studentAgreement).toBeGreaterThan(out.metrics.studentAgreementInitial);
  expect(out.metrics.targetAgreement).toBeGreaterThanOrEqual(0.8);
  const withStudent = ctx.reports.filter((r) => r.metrics?.studentAgreement !== undefined);
  expect(withStudent).toHaveLength(3);
  expect(ctx.reports[0].metrics!.competition).toBeGreaterThanOrEqual(0);
  expect(ctx.reports[0].metrics!.competition).toBeLessThanOrEqual(1);
});

test('cancels through the AbortSignal and frees its tensors', async () => {
  const before = tf.memory().numTensors;
  const controller = new AbortController();
  const ctx = stageContext(5, controller.signal);
  const report = ctx.report;
  ctx.report = (p) => {
    report(p);
    if (p.step === 7) controller.abort();
  };
  await expect(plugin.synthesize({ teacher }, config({ mode: 'adaptive' }), ctx)).rejects.toThrow(StageCancelledError);
  expect(ctx.reports.length).toBe(7);
  expect(tf.memory().numTensors).toBe(before);
});

test('resuming from a checkpoint makes the same images as an uninterrupted run (adaptive mode, student state included)', async () => {
  const cfg = config({ mode: 'adaptive', count: 18, iterations: 8, studentTraining: { stepsPerBatch: 5, batchSize: 6, learningRate: 1e-2 } });
  const whole = await plugin.synthesize({ teacher }, cfg, stageContext(6));

  const checkpoint = memoryCheckpoint(8);
  const controller = new AbortController();
  const first = { ...stageContext(6, controller.signal), checkpoint };
  const report = first.report;
  first.report = (p) => {
    report(p);
    if (p.step === 2 * 8 + 3) controller.abort();
  };
  await expect(plugin.synthesize({ teacher }, cfg, first)).rejects.toThrow(StageCancelledError);
  expect(checkpoint.saves).toEqual([8, 16]);

  const second = { ...stageContext(6), checkpoint };
  const resumed = await plugin.synthesize({ teacher }, cfg, second);
  expect(second.reports[0].step).toBe(17);
  expect(Array.from(resumed.dataset.images)).toEqual(Array.from(whole.dataset.images));
  expect(resumed.metrics.finalLoss).toBeCloseTo(whole.metrics.finalLoss, 6);
  expect(resumed.metrics.studentAgreement).toBe(whole.metrics.studentAgreement);
  expect(resumed.metrics.studentAgreementInitial).toBe(whole.metrics.studentAgreementInitial);
});
