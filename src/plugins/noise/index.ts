import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { ImageSet } from '../../core/data/image-set';
import { imageGridPng } from '../../core/images/image-grid';
import { modelInputShape, modelNumClasses } from '../../core/models/model-spec';
import { throwIfAborted, type StageContext, type SynthesisInput, type SynthesisOutput, type SynthesisPlugin } from '../../core/plugins/contracts';
import { SeededRandom } from '../../core/random';
import { yieldToEventLoop } from '../../core/event-loop';

export const noiseConfigSchema = z.strictObject({
  count: z.number().int().min(1).max(1_000_000).default(2560).describe('Number of images to make'),
  batchSize: z.number().int().min(1).max(4096).default(256).describe('Images labelled by the teacher per forward pass'),
  mean: z.number().min(0).max(1).default(0.5).describe('Mean of the Gaussian pixel noise (pixels live in [0, 1])'),
  std: z.number().gt(0).max(2).default(0.25).describe('Standard deviation of the pixel noise; values are clipped to [0, 1]'),
});
export type NoiseConfig = z.infer<typeof noiseConfigSchema>;

/** Statistics of the teacher's answers on a set of logits rows. */
export interface TeacherAnswerStats {
  labels: Int32Array;
  /** Mean over images of the largest softmax probability. */
  confidence: number;
  /** Mean over images of the softmax entropy, in nats. */
  entropy: number;
  /** Images per class. */
  histogram: Int32Array;
  /** Fewest images of any class divided by most images of any class (1 = balanced, 0 = some class never chosen). */
  classBalance: number;
}

/** Argmax labels, confidence, entropy and class balance of logits rows [count × numClasses]. */
export function teacherAnswerStats(logits: Float32Array, count: number, numClasses: number): TeacherAnswerStats {
  const labels = new Int32Array(count);
  const histogram = new Int32Array(numClasses);
  let confidence = 0;
  let entropy = 0;
  for (let i = 0; i < count; i++) {
    const row = logits.subarray(i * numClasses, (i + 1) * numClasses);
    let best = 0;
    for (let k = 1; k < numClasses; k++) if (row[k] > row[best]) best = k;
    let partition = 0;
    for (let k = 0; k < numClasses; k++) partition += Math.exp(row[k] - row[best]);
    let h = 0;
    for (let k = 0; k < numClasses; k++) {
      const logP = row[k] - row[best] - Math.log(partition);
      h -= Math.exp(logP) * logP;
    }
    labels[i] = best;
    histogram[best]++;
    confidence += 1 / partition;
    entropy += h;
  }
  let min = Infinity;
  let max = 0;
  for (const n of histogram) {
    min = Math.min(min, n);
    max = Math.max(max, n);
  }
  return { labels, confidence: confidence / count, entropy: entropy / count, histogram, classBalance: max > 0 ? min / max : 0 };
}

async function synthesize(input: SynthesisInput, config: NoiseConfig, ctx: StageContext): Promise<SynthesisOutput> {
  const started = Date.now();
  const shape = modelInputShape(input.teacher);
  const numClasses = modelNumClasses(input.teacher);
  const size = shape[0] * shape[1] * shape[2];
  const images = new Float32Array(config.count * size);
  const teacherLogits = new Float32Array(config.count * numClasses);
  const random = new SeededRandom(ctx.seed);
  const batches = Math.ceil(config.count / config.batchSize);

  for (let b = 0; b < batches; b++) {
    throwIfAborted(ctx.signal);
    const start = b * config.batchSize;
    const n = Math.min(config.batchSize, config.count - start);
    const batch = images.subarray(start * size, (start + n) * size);
    for (let i = 0; i < batch.length; i++) {
      batch[i] = Math.min(1, Math.max(0, config.mean + config.std * random.gaussian()));
    }
    const logits = tf.tidy(() => input.teacher.model.predict(tf.tensor4d(batch, [n, ...shape])) as tf.Tensor);
    try {
      teacherLogits.set(await logits.data(), start * numClasses);
    } finally {
      logits.dispose();
    }
    ctx.report({ step: b + 1, total: batches, metrics: { imagesMade: start + n } });
    await yieldToEventLoop();
  }

  const stats = teacherAnswerStats(teacherLogits, config.count, numClasses);
  const dataset: ImageSet = { images, labels: stats.labels, teacherLogits, count: config.count, shape, numClasses };
  const seconds = (Date.now() - started) / 1000;
  ctx.log.info({ histogram: Array.from(stats.histogram) }, 'noise: teacher labels per class');
  return {
    dataset,
    metrics: {
      imagesMade: config.count,
      seconds,
      imagesPerSecond: config.count / Math.max(seconds, 1e-3),
      teacherConfidence: stats.confidence,
      teacherEntropy: stats.entropy,
      classBalance: stats.classBalance,
    },
    images: [{ name: 'noise-samples.png', png: imageGridPng(dataset, { perClass: 8, maxClasses: 10 }) }],
  };
}

/**
 * The synthesis baseline: Gaussian pixel noise in the teacher's input shape, labelled by the
 * teacher's argmax, with the teacher's logits kept for distillation.
 */
export const plugin: SynthesisPlugin<NoiseConfig> = {
  name: 'noise',
  kind: 'synthesis',
  version: '1.0.0',
  description:
    'Baseline synthesis: images of Gaussian pixel noise (mean, std; clipped to [0, 1]) in the teacher\'s input shape, ' +
    'labelled by the teacher\'s argmax, with its logits. Metrics: teacherConfidence (mean max softmax), teacherEntropy ' +
    '(mean softmax entropy, nats), classBalance (fewest images of a class / most images of a class; 1 = balanced, ' +
    '0 = some class never chosen).',
  configSchema: noiseConfigSchema,
  inputs: ['model'],
  output: 'synthetic-dataset',
  synthesize,
};
