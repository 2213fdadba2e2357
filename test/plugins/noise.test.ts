import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { imageGridPng } from '../../src/core/images/image-grid';
import { StageCancelledError } from '../../src/core/plugins/contracts';
import { noiseConfigSchema, plugin } from '../../src/plugins/noise';
import { predictLogits, stageContext, tinyConvNet } from './support/stage';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const shape: [number, number, number] = [10, 10, 1];

describe('noise synthesis', () => {
  const teacher = { name: 'tiny', model: tinyConvNet(shape, 5, 3) };
  afterAll(() => teacher.model.dispose());

  it("makes `count` images of the teacher's shape in [0, 1], labelled by the teacher's argmax, with its logits", async () => {
    const config = noiseConfigSchema.parse({ count: 70, batchSize: 32, mean: 0.4, std: 0.3 });
    const ctx = stageContext(11);
    const before = tf.memory().numTensors;
    const out = await plugin.synthesize({ teacher }, config, ctx);
    expect(tf.memory().numTensors).toBe(before);

    const set = out.dataset;
    expect(set.count).toBe(70);
    expect(set.shape).toEqual(shape);
    expect(set.numClasses).toBe(5);
    expect(set.images.length).toBe(70 * 100);
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (const v of set.images) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThanOrEqual(1);
    expect(sum / set.images.length).toBeCloseTo(0.4, 1); // clipping shifts the mean only slightly at std 0.3

    // Labels and logits agree with running the teacher ourselves on the images made.
    const logits = await predictLogits(teacher.model, set.images, shape);
    logits.forEach((v, i) => expect(set.teacherLogits![i]).toBeCloseTo(v, 4));
    for (let i = 0; i < set.count; i++) {
      const row = Array.from(logits.subarray(i * 5, i * 5 + 5));
      expect(set.labels[i]).toBe(row.indexOf(Math.max(...row)));
    }

    expect(ctx.reports.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(ctx.reports.every((r) => r.total === 3)).toBe(true);
    expect(out.metrics.imagesMade).toBe(70);
    expect(out.metrics.teacherConfidence).toBeGreaterThanOrEqual(1 / 5);
    expect(out.metrics.teacherConfidence).toBeLessThanOrEqual(1);
    expect(out.metrics.teacherEntropy).toBeGreaterThanOrEqual(0);
    expect(out.metrics.teacherEntropy).toBeLessThanOrEqual(Math.log(5) + 1e-6);
    expect(out.metrics.classBalance).toBeGreaterThanOrEqual(0);
    expect(out.metrics.classBalance).toBeLessThanOrEqual(1);
    expect(out.images?.[0].png.subarray(1, 4).toString()).toBe('PNG');
  });

  it('is deterministic for a seed and differs across seeds', async () => {
    const config = noiseConfigSchema.parse({ count: 20, batchSize: 8 });
    const a = await plugin.synthesize({ teacher }, config, stageContext(5));
    const b = await plugin.synthesize({ teacher }, config, stageContext(5));
    const c = await plugin.synthesize({ teacher }, config, stageContext(6));
    expect(Buffer.from(a.dataset.images.buffer).equals(Buffer.from(b.dataset.images.buffer))).toBe(true);
    expect(Array.from(a.dataset.labels)).toEqual(Array.from(b.dataset.labels));
    expect(Buffer.from(a.dataset.images.buffer).equals(Buffer.from(c.dataset.images.buffer))).toBe(false);
  });

  it('stops when the run is cancelled', async () => {
    const controller = new AbortController();
    controller.abort();
    const config = noiseConfigSchema.parse({ count: 20, batchSize: 8 });
    await expect(plugin.synthesize({ teacher }, config, stageContext(5, controller.signal))).rejects.toBeInstanceOf(StageCancelledError);
  });
});

describe('imageGridPng', () => {
  it('draws one row per class with the images of that class', () => {
    // Two classes, 2×2 grey images: class 0 images are all 1 (white), class 1 are all 0.5.
    const images = new Float32Array([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1]);
    const set = { images, labels: new Int32Array([0, 1, 0]), count: 3, shape: [2, 2, 1] as [number, number, number], numClasses: 2 };
    const png = PNG.sync.read(imageGridPng(set, { perClass: 2, maxClasses: 10, gap: 1 }));
    expect([png.width, png.height]).toEqual([1 + 2 * 3, 1 + 2 * 3]);
    const px = (x: number, y: number) => png.data[(y * png.width + x) * 4];
    expect(px(0, 0)).toBe(0); // gap
    expect([px(1, 1), px(2, 2), px(4, 1), px(5, 2)]).toEqual([255, 255, 255, 255]); // row 0: two white images
    expect([px(1, 4), px(2, 5)]).toEqual([128, 128]); // row 1: one grey image
    expect(px(4, 4)).toBe(0); // class 1 has one image only: the second cell stays black
  });
});
