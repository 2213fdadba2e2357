import { z } from 'zod';
import { modelInputShape, modelNumClasses, type ModelHandle } from '../../core/models/model-spec';
import {
  PluginInputError,
  throwIfAborted,
  type StageContext,
  type SynthesisInput,
  type SynthesisOutput,
  type SynthesisPlugin,
} from '../../core/plugins/contracts';
import { loadSynthesisState, saveSynthesisState, SynthesisCheckpointError } from '../../core/synthesis/synthesis-checkpoint';
import { finishSynthesis } from '../../core/synthesis/synthesis-output';
import { classBalancedTargets } from '../../core/synthesis/targets';
import { BnTapError, isBatchNorm } from '../../core/tensors/bn-taps';
import { inputGradientForward } from '../../core/tensors/input-gradient';
import { batchSeed, synthesizeBatch, type PreparedTeacher } from './batch';
import { featureExtractor, FeaturePyramidError, findFeaturePyramid } from './feature-pyramid';

export const naturalInversionConfigSchema = z.strictObject({
  count: z.number().int().min(1).max(1_000_000).default(2560).describe('Number of images to make'),
  batchSize: z
    .number()
    .int()
    .min(1)
    .max(4096)
    .default(256)
    .describe('Images per batch; each batch gets a fresh generator, FTP decoder and ACS, optimised together (the paper: 256)'),
  iterations: z
    .number()
    .int()
    .min(1)
    .max(100_000)
    .default(2000)
    .describe('Optimisation iterations per batch (the paper: 2000 for CIFAR-10, 4000 for CIFAR-100); the cost grows linearly with it'),
  latentSize: z
    .number()
    .int()
    .min(1)
    .max(4096)
    .default(256)
    .describe('Size of each image\'s fixed latent z ~ N(0, I), concatenated with the one-hot target (the paper: 1024 at CIFAR scale; 256 is enough for MNIST-scale images)'),
  generatorChannels: z
    .number()
    .int()
    .min(4)
    .max(512)
    .default(128)
    .describe('Channels of the generator\'s first two stages; the third has half (the paper: 128). Most of the time per iteration is spent here'),
  generatorLearningRate: z.number().gt(0).max(1).default(1e-3).describe('Adam learning rate of the generator (the paper: 1e-3)'),
  ftpLearningRate: z.number().gt(0).max(1).default(5e-4).describe('Adam learning rate of the Feature Transfer Pyramid decoder (the paper: 5e-4)'),
  acsLearningRate: z.number().gt(0).max(10).default(5e-2).describe('Adam learning rate of the Adaptive Channel Scaling factors α (the paper: 5e-2)'),
  warmupIterations: z
    .number()
    .int()
    .min(0)
    .max(100_000)
    .default(0)
    .describe('Linear learning-rate warm-up at the start of each batch, in iterations; the rates are constant after it (the paper: none)'),
  weights: z
    .strictObject({
      crossEntropy: z.number().min(0).max(1000).default(1).describe('Weight of the cross-entropy of the teacher\'s logits to the targets'),
      bnStatistics: z
        .number()
        .min(0)
        .max(1e6)
        .default(10)
        .describe(
          'Weight of Σ over the teacher\'s BN layers of ‖μ − μ_running‖₂ + ‖σ² − σ²_running‖₂ (the paper\'s r_feature: 10 for CIFAR-10, 3 for ' +
            'CIFAR-100). On LeNet-5-BN it dominates the cross-entropy for hundreds of iterations; lower it (e.g. 1) when targetAgreement stays low',
        ),
      tvL2: z
        .number()
        .min(0)
        .max(1000)
        .default(6e-3)
        .describe('Weight of the TV-L2 prior, Σ of the 4 shifted differences\' batch norms (the paper\'s var_scale 6e-3; on [0, 1] pixels the term is ~4× smaller than on normalised ones, the paper\'s value still keeps it next to the cross-entropy)'),
      l2: z
        .number()
        .min(0)
        .max(1000)
        .default(1.5e-5)
        .describe('Weight of the l2 prior, the mean per-image pixel norm (the paper\'s l2_scale 1.5e-5, which multiplies the whole batch\'s norm there; negligible at this value either way)'),
    })
    .default({ crossEntropy: 1, bnStatistics: 10, tvL2: 6e-3, l2: 1.5e-5 })
    .describe('Weights of the DeepInversion loss terms on the final images (NaturalInversion adds no term of its own)'),
  jitter: z
    .number()
    .int()
    .min(0)
    .max(32)
    .default(2)
    .describe(
      'Random circular shift of up to ± this many pixels, applied before the FTP and after ACS each iteration (the paper: 2, with ResNets, ' +
        'whose global pooling makes them shift-invariant; a teacher with dense layers on the feature map, as LeNet, is not: lower it there)',
    ),
  flip: z
    .boolean()
    .default(false)
    .describe('Random horizontal flips with the jitter (the paper flips CIFAR images; off by default because mirrored digits are not digits)'),
  acsInit: z
    .strictObject({
      mean: z.number().gt(0).max(100).default(5).describe('Mean of the initial α; 5 (the paper) maps tanh\'s [−1, 1] onto the full [0, 1] pixel range'),
      std: z.number().min(0).max(100).default(1).describe('Standard deviation of the initial α (the paper: 1)'),
    })
    .default({ mean: 5, std: 1 })
    .describe('Initial Adaptive Channel Scaling factors α ~ N(mean, std²), one per image and channel'),
});
export type NaturalInversionConfig = z.infer<typeof naturalInversionConfigSchema>;

/** Checks the teacher and prepares what every batch needs; PluginInputError with what to change otherwise. */
export function prepareTeacher(handle: ModelHandle): PreparedTeacher {
  let shape: [number, number, number];
  let numClasses: number;
  try {
    shape = modelInputShape(handle);
    numClasses = modelNumClasses(handle);
  } catch (err) {
    throw new PluginInputError((err as Error).message);
  }
  if (!handle.model.layers.some(isBatchNorm)) {
    throw new PluginInputError(
      `natural-inversion needs a teacher with BatchNormalization layers (its loss matches their running statistics); ` +
        `teacher ${handle.name} has none. Use a BN teacher (lenet5-bn, resnet-cifar, resnet-basic, vgg-bn) or the noise plugin`,
    );
  }
  try {
    const levels = findFeaturePyramid(handle.model);
    return { name: handle.name, shape, numClasses, forward: inputGradientForward(handle.model), levels, features: featureExtractor(handle.model, levels) };
  } catch (err) {
    if (err instanceof FeaturePyramidError || err instanceof BnTapError) throw new PluginInputError(`natural-inversion cannot use teacher ${handle.name}: ${err.message}`);
    throw err;
  }
}

async function synthesize(input: SynthesisInput, config: NaturalInversionConfig, ctx: StageContext): Promise<SynthesisOutput> {
  const teacher = prepareTeacher(input.teacher);
  const size = teacher.shape[0] * teacher.shape[1] * teacher.shape[2];
  const batches = Math.ceil(config.count / config.batchSize);
  const totalIterations = batches * config.iterations;
  const images = new Float32Array(config.count * size);
  const weights = { ...config.weights, tvL1: 0, firstBnMultiplier: 1, competition: 0, competitionTemperature: 1 };

  const saved = await loadSynthesisState(ctx.checkpoint);
  let firstBatch = 0;
  let iterationsDone = 0;
  let seconds = 0;
  const bestLosses: number[] = [];
  if (saved !== undefined) {
    const expected = Math.min(saved.batchesDone * config.batchSize, config.count) * size;
    if (saved.batchesDone > batches || saved.images.length !== expected || saved.iterationsDone !== saved.batchesDone * config.iterations) {
      throw new SynthesisCheckpointError(
        `natural-inversion checkpoint (${saved.batchesDone} batches, ${saved.images.length} pixel values) does not match this config ` +
          `(${batches} batches of ${config.batchSize}, ${config.iterations} iterations); was the config changed?`,
      );
    }
    images.set(saved.images);
    firstBatch = saved.batchesDone;
    iterationsDone = saved.iterationsDone;
    seconds = saved.seconds ?? 0;
    bestLosses.push(...(saved.lossHistory ?? []));
    ctx.log.info({ batchesDone: firstBatch }, 'natural-inversion: resuming from checkpoint');
  }
  let savedAt = iterationsDone;

  for (let b = firstBatch; b < batches; b++) {
    throwIfAborted(ctx.signal);
    const started = Date.now();
    const start = b * config.batchSize;
    const n = Math.min(config.batchSize, config.count - start);
    const targets = classBalancedTargets(start, n, teacher.numClasses);
    const result = await synthesizeBatch(teacher, targets, batchSeed(ctx.seed, b), { ...config, weights }, {
      signal: ctx.signal,
      describe: `batch ${b + 1} of ${batches}`,
      // The batch's images count as made once its last iteration (which settles its best iterate) ran.
      onIteration: ({ iteration, loss, terms }) =>
        ctx.report({
          step: iterationsDone + iteration + 1,
          total: totalIterations,
          metrics: { loss, ...terms, imagesMade: iteration + 1 === config.iterations ? start + n : start },
        }),
    });
    images.set(result.images, start * size);
    iterationsDone += config.iterations;
    bestLosses.push(result.bestLoss);
    seconds += (Date.now() - started) / 1000;
    if (ctx.checkpoint && iterationsDone - savedAt >= ctx.checkpoint.every) {
      await saveSynthesisState(
        ctx.checkpoint,
        { batchesDone: b + 1, iterationsDone, images: images.subarray(0, (start + n) * size), lossHistory: bestLosses, seconds },
        iterationsDone,
      );
      savedAt = iterationsDone;
    }
  }

  const meanBestLoss = bestLosses.reduce((a, b) => a + b, 0) / Math.max(bestLosses.length, 1);
  return finishSynthesis(
    input.teacher,
    { images, targets: classBalancedTargets(0, config.count, teacher.numClasses), count: config.count, shape: teacher.shape, numClasses: teacher.numClasses, seconds },
    {
      reference: input.reference,
      gridName: 'natural-inversion-samples.png',
      signal: ctx.signal,
      seed: ctx.seed,
      extraMetrics: { meanBestLoss, featureScales: teacher.levels.length },
    },
  );
}

/**
 * NaturalInversion (Kim et al., AAAI 2022): per batch, a fresh one-to-one conditional generator, a
 * Feature Transfer Pyramid decoder fed with the teacher's own feature maps, and Adaptive Channel
 * Scaling are optimised together on DeepInversion's loss (CE to the targets, BN statistics, TV, l2).
 */
export const plugin: SynthesisPlugin<NaturalInversionConfig> = {
  name: 'natural-inversion',
  kind: 'synthesis',
  version: '1.0.0',
  description:
    'NaturalInversion (AAAI 2022) data-free synthesis for BatchNorm teachers: per batch, a conditional generator (latent + ' +
    'one-hot target), a Feature Transfer Pyramid decoder fed with the teacher\'s feature maps at every scale, and Adaptive ' +
    'Channel Scaling are optimised with Adam on cross-entropy to the targets, BN-statistics matching, TV-L2 and l2 priors; ' +
    'the lowest-loss iterate of each batch is kept. Images are labelled with their targets and carry the teacher\'s logits. ' +
    'Costly: every iteration runs the generator and the teacher forward and backward; lower iterations or generatorChannels for speed. ' +
    'Metrics: targetAgreement, teacherConfidence, teacherEntropy, classBalance, frechetDistance (with a reference set), meanBestLoss.',
  configSchema: naturalInversionConfigSchema,
  inputs: ['model'],
  output: 'synthetic-dataset',
  synthesize,
};
