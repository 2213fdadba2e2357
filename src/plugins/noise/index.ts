import { z } from 'zod';
import { finishSynthesis } from '../../core/synthesis/synthesis-output';
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

async function synthesize(input: SynthesisInput, config: NoiseConfig, ctx: StageContext): Promise<SynthesisOutput> {
  const started = Date.now();
  const shape = modelInputShape(input.teacher);
  const numClasses = modelNumClasses(input.teacher);
  const size = shape[0] * shape[1] * shape[2];
  const images = new Float32Array(config.count * size);
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
    ctx.report({ step: b + 1, total: batches, metrics: { imagesMade: start + n } });
    await yieldToEventLoop();
  }

  const made = { images, count: config.count, shape, numClasses, seconds: (Date.now() - started) / 1000 };
  const out = await finishSynthesis(input.teacher, made, { reference: input.reference, gridName: 'noise-samples.png', signal: ctx.signal, seed: ctx.seed });
  ctx.log.info({ classBalance: out.metrics.classBalance }, 'noise: images labelled by the teacher');
  return out;
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
