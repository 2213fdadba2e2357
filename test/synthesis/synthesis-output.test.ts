import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import type { ImageSet } from '../../src/core/data/image-set';
import { StageCancelledError } from '../../src/core/plugins/contracts';
import { finishSynthesis, penultimateModel, teacherAnswerStats, teacherFrechetDistance } from '../../src/core/synthesis/synthesis-output';
import { predictLogits, tinyConvNet } from '../plugins/support/stage';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('teacherAnswerStats', () => {
  it('computes argmax, mean max-softmax, mean entropy and min/max class ratio', () => {
    // Row 0: equal logits → p = [1/3]*3, entropy ln 3. Row 1: [ln 2, 0, 0] → p = [1/2, 1/4, 1/4].
    // Row 2: class 1 wins clearly.
    const logits = new Float32Array([0, 0, 0, Math.log(2), 0, 0, 0, 50, 0]);
    const stats = teacherAnswerStats(logits, 3, 3);
    expect(Array.from(stats.labels)).toEqual([0, 0, 1]);
    expect(Array.from(stats.histogram)).toEqual([2, 1, 0]);
    expect(stats.confidence).toBeCloseTo((1 / 3 + 1 / 2 + 1) / 3, 6);
    const h1 = -(0.5 * Math.log(0.5) + 2 * 0.25 * Math.log(0.25));
    expect(stats.entropy).toBeCloseTo((Math.log(3) + h1 + 0) / 3, 5);
    expect(stats.classBalance).toBe(0);
    expect(teacherAnswerStats(new Float32Array([1, 0, 0, 1]), 2, 2).classBalance).toBe(1);
  });
});


describe('finishSynthesis', () => {
  const shape: [number, number, number] = [10, 10, 1];
  const teacher = { name: 'tiny', model: tinyConvNet(shape, 4, 21) };
  afterAll(() => teacher.model.dispose());
  const signal = new AbortController().signal;

  function images(count: number, seed: number): Float32Array {
    return tf.tidy(() => tf.randomUniform([count * 100], 0, 1, 'float32', seed).dataSync() as Float32Array);
  }

  it("labels made images with their targets, keeps the teacher's logits and measures agreement", async () => {
    const pixels = images(12, 3);
    const logits = await predictLogits(teacher.model, pixels, shape);
    const argmax = Array.from({ length: 12 }, (_, i) => {
      const row = Array.from(logits.subarray(i * 4, i * 4 + 4));
      return row.indexOf(Math.max(...row));
    });
    // Targets: the teacher's answer for the first 9 images, a different class for the last 3.
    const targets = Int32Array.from(argmax.map((c, i) => (i < 9 ? c : (c + 1) % 4)));
    const before = tf.memory().numTensors;
    const out = await finishSynthesis(teacher, { images: pixels, targets, count: 12, shape, numClasses: 4, seconds: 2 }, { gridName: 'grid.png', signal });
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(out.dataset.labels)).toEqual(Array.from(targets));
    out.dataset.teacherLogits!.forEach((v, i) => expect(v).toBeCloseTo(logits[i], 4));
    expect(out.metrics.targetAgreement).toBeCloseTo(9 / 12, 10);
    expect(out.metrics.imagesMade).toBe(12);
    expect(out.metrics.imagesPerSecond).toBeCloseTo(6, 10);
    expect(out.metrics.frechetDistance).toBeUndefined();
    expect(out.images?.[0].name).toBe('grid.png');
    const png = PNG.sync.read(out.images![0].png);
    expect(png.width).toBeGreaterThan(0);
  });

  it("labels images by the teacher's argmax when no targets are given", async () => {
    const pixels = images(6, 4);
    const out = await finishSynthesis(teacher, { images: pixels, count: 6, shape, numClasses: 4, seconds: 1 }, { gridName: 'g.png', signal });
    const stats = teacherAnswerStats(out.dataset.teacherLogits!, 6, 4);
    expect(Array.from(out.dataset.labels)).toEqual(Array.from(stats.labels));
    expect(out.metrics.targetAgreement).toBeUndefined();
  });

  it('measures the Fréchet distance to a reference in the penultimate space: ~0 to itself, larger to other images', async () => {
    const pixels = images(40, 5);
    const reference: ImageSet = { images: pixels, labels: new Int32Array(40), count: 40, shape, numClasses: 4 };
    const same = await finishSynthesis(teacher, { images: pixels, count: 40, shape, numClasses: 4, seconds: 1 }, { gridName: 'g.png', signal, reference });
    expect(same.metrics.frechetDistance).toBeLessThan(1e-3);
    const dark = pixels.map((v) => v * 0.2);
    const other = await finishSynthesis(teacher, { images: dark, count: 40, shape, numClasses: 4, seconds: 1 }, { gridName: 'g.png', signal, reference });
    expect(other.metrics.frechetDistance).toBeGreaterThan(0.01);
  });

  it('uses the input of the last Dense layer as the feature space', () => {
    const features = penultimateModel(teacher.model);
    expect(features.outputs[0].shape).toEqual([null, 12]);
  });

  it('refuses a reference of another image shape and stops when cancelled', async () => {
    const reference: ImageSet = { images: new Float32Array(2 * 64), labels: new Int32Array(2), count: 2, shape: [8, 8, 1], numClasses: 4 };
    await expect(finishSynthesis(teacher, { images: images(2, 6), count: 2, shape, numClasses: 4, seconds: 1 }, { gridName: 'g.png', signal, reference })).rejects.toThrow(/8×8×1/);
    const controller = new AbortController();
    controller.abort();
    const set: ImageSet = { images: images(2, 7), labels: new Int32Array(2), count: 2, shape, numClasses: 4 };
    await expect(teacherFrechetDistance(teacher.model, set, set, controller.signal)).rejects.toBeInstanceOf(StageCancelledError);
  });
});
