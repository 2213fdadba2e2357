import * as tf from '@tensorflow/tfjs';
import { deepInversionBatch, DeepInversionBatchError, type DeepInversionBatchSettings } from '../../src/core/synthesis/deep-inversion-batch';
import { inversionLoss } from '../../src/core/synthesis/inversion-loss';
import { classBalancedTargets } from '../../src/core/synthesis/targets';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { inputGradientForward } from '../../src/core/tensors/input-gradient';
import { bnConvNet, trainedBnTeacher } from './support';

beforeAll(async () => {
  await initTensorBackend('wasm');
  teacher = await trainedBnTeacher(SHAPE, 3, 41);
});

const SHAPE: [number, number, number] = [8, 8, 1];
let teacher: tf.LayersModel;
const targets = classBalancedTargets(0, 6, 3);
const SETTINGS: DeepInversionBatchSettings = {
  iterations: 30,
  learningRate: 0.1,
  beta1: 0.9,
  beta2: 0.999,
  warmupIterations: 2,
  jitter: 1,
  // No flip: it would swap the teacher's left and right quadrant classes.
  flipProbability: 0,
  weights: { crossEntropy: 1, bnStatistics: 1, firstBnMultiplier: 2, tvL2: 1e-3, tvL1: 0, l2: 1e-3, competition: 0, competitionTemperature: 3 },
};

test('lowers its loss, keeps images in [0, 1], leaves memory flat and is deterministic', async () => {
  const before = tf.memory().numTensors;
  const during: number[] = [];
  const reports: number[] = [];
  const result = await deepInversionBatch(
    { teacher, targets, seed: 5, onIteration: (r) => void (during.push(tf.memory().numTensors), reports.push(r.iteration)) },
    SETTINGS,
  );
  expect(tf.memory().numTensors).toBe(before);
  expect(new Set(during).size).toBe(1);
  expect(reports).toEqual(Array.from({ length: 30 }, (_, i) => i));
  expect(result.shape).toEqual([6, ...SHAPE]);
  expect(result.images.length).toBe(6 * 64);
  expect(result.images.every((v) => v >= 0 && v <= 1)).toBe(true);
  expect(result.bestLoss).toBeLessThan(0.5 * result.losses[0]);
  expect(Object.keys(result.bestTerms).sort()).toEqual(['bnStatistics', 'crossEntropy', 'l2', 'tvL2']);
  // The teacher labels the images as their targets.
  const labels = tf.tidy(() => (teacher.predict(tf.tensor4d(result.images, result.shape)) as tf.Tensor).argMax(1).dataSync());
  expect(Array.from(labels)).toEqual(Array.from(targets));
  const again = await deepInversionBatch({ teacher, targets, seed: 5 }, SETTINGS);
  expect(Array.from(again.losses)).toEqual(Array.from(result.losses));
  const other = await deepInversionBatch({ teacher, targets, seed: 6 }, SETTINGS);
  expect(other.images[0]).not.toBe(result.images[0]);
});

test('returns a copy of the best iterate, not the last pixels', async () => {
  // No jitter, so the loss of the returned images can be recomputed; a constant, large step makes
  // the loss oscillate, so the best iterate is not the last one.
  const settings: DeepInversionBatchSettings = { ...SETTINGS, iterations: 25, learningRate: 0.6, schedule: 'constant', warmupIterations: 0, jitter: 0, flipProbability: 0 };
  const result = await deepInversionBatch({ teacher, targets, seed: 9 }, settings);
  expect(result.bestIteration).toBeLessThan(settings.iterations - 1);
  expect(result.bestLoss).toBe(Math.min(...result.losses));
  expect(result.losses[settings.iterations - 1]).toBeGreaterThan(result.bestLoss);
  const recomputed = tf.tidy(() => {
    const images = tf.tensor4d(result.images, result.shape);
    const forward = inputGradientForward(teacher)(images);
    return inversionLoss({ images, forward, targets: tf.tensor1d(targets, 'int32') }, settings.weights).total.dataSync()[0];
  });
  expect(recomputed).toBeCloseTo(result.bestLoss, 4);
  // The same run cut at the best iteration ends with the same images.
  const cut = await deepInversionBatch({ teacher, targets, seed: 9 }, { ...settings, iterations: result.bestIteration + 1 });
  expect(Array.from(cut.images)).toEqual(Array.from(result.images));
});

test('ADI: the competition term is used with a student and memory stays flat', async () => {
  const student = bnConvNet(SHAPE, 3, 77);
  const before = tf.memory().numTensors;
  const weights = { ...SETTINGS.weights, competition: 0.2 };
  const result = await deepInversionBatch({ teacher, targets, seed: 5, student }, { ...SETTINGS, iterations: 5, weights });
  expect(tf.memory().numTensors).toBe(before);
  expect(result.bestTerms.competition).toBeGreaterThanOrEqual(0);
  expect(result.bestTerms.competition).toBeLessThanOrEqual(1);
  // Without a student the term is absent.
  const plain = await deepInversionBatch({ teacher, targets, seed: 5 }, { ...SETTINGS, iterations: 5, weights });
  expect(plain.bestTerms.competition).toBeUndefined();
  student.dispose();
});

test('refuses bad settings and targets, names the iteration of a diverged loss, and frees tensors when stopped', async () => {
  await expect(deepInversionBatch({ teacher, targets: Int32Array.of(0, 3), seed: 1 }, SETTINGS)).rejects.toThrow(/target class 3 is outside 0..2/);
  await expect(deepInversionBatch({ teacher, targets, seed: 1 }, { ...SETTINGS, iterations: 0 })).rejects.toThrow(DeepInversionBatchError);
  await expect(deepInversionBatch({ teacher, targets, seed: 1 }, { ...SETTINGS, beta1: 1 })).rejects.toThrow(/betas/);
  const before = tf.memory().numTensors;
  const huge = { ...SETTINGS.weights, crossEntropy: Number.MAX_VALUE, bnStatistics: Number.MAX_VALUE };
  await expect(deepInversionBatch({ teacher, targets, seed: 1 }, { ...SETTINGS, weights: huge })).rejects.toThrow(/became Infinity at iteration 1; lower/);
  await expect(
    deepInversionBatch({ teacher, targets, seed: 1, onIteration: (r) => { if (r.iteration === 3) throw new Error('stop'); } }, SETTINGS),
  ).rejects.toThrow('stop');
  expect(tf.memory().numTensors).toBe(before);
});
