import { z } from 'zod';
import { yieldToEventLoop } from '../../core/event-loop';
import { modelInputShape, modelNumClasses, type ModelHandle } from '../../core/models/model-spec';
import { buildModel } from '../../core/models/zoo';
import { predictRows } from '../../core/models/predict';
import { PluginInputError, throwIfAborted, type StageContext, type SynthesisInput, type SynthesisOutput, type SynthesisPlugin } from '../../core/plugins/contracts';
import { studentOverridesSchema, studentSpecFrom } from '../../core/plugins/student-spec';
import { SeededRandom } from '../../core/random';
import { deepInversionBatch, DeepInversionBatchError, type DeepInversionBatchSettings } from '../../core/synthesis/deep-inversion-batch';
import type { InversionWeights } from '../../core/synthesis/inversion-loss';
import { loadSynthesisState, saveSynthesisState, type SynthesisState } from '../../core/synthesis/synthesis-checkpoint';
import { finishSynthesis } from '../../core/synthesis/synthesis-output';
import { decodeFramed, encodeFramed } from '../../core/checkpoints/framed-buffer';
import { classBalancedTargets } from '../../core/synthesis/targets';
import { BnTapError, isBatchNorm } from '../../core/tensors/bn-taps';
import { inputGradientForward } from '../../core/tensors/input-gradient';
import { AdiStudent } from './adi-student';

export const DEEP_INVERSION_MODES = ['deep-inversion', 'adaptive', 'deep-dream'] as const;

const weightsSchema = z
  .strictObject({
    crossEntropy: z.number().min(0).max(1e3).default(1).describe('Weight of the cross-entropy of the teacher\'s logits to each image\'s target class (main_loss_multiplier)'),
    bnStatistics: z
      .number()
      .min(0)
      .max(1e4)
      .default(10)
      .describe(
        'Weight of the BatchNorm-statistics term Σ‖μ − μ_running‖ + ‖σ² − σ²_running‖ (r_feature). 10: the reference CIFAR README\'s "paper parameters" ' +
          '(its argparse default is 100; ImageNet 0.05). Ignored in deep-dream mode',
      ),
    firstBnMultiplier: z
      .number()
      .min(0)
      .max(1e3)
      .default(1)
      .describe('Extra weight of the first BatchNorm layer\'s term; 1 as the reference CIFAR code (its ImageNet code uses 10)'),
    tvL2: z
      .number()
      .min(0)
      .max(1e3)
      .default(1e-4)
      .describe(
        'Weight of TV-L2: Σ over the 4 shifted differences (horizontal, vertical, two diagonals) of their norm over the batch. 1e-4: the reference ' +
          'CIFAR default 2.5e-5 acts on normalised pixels (differences about 4× larger than in our [0, 1] pixels), i.e. ≈1e-4 here; also the ' +
          'ImageNet default and the paper\'s CIFAR value as reported by others. Its README\'s "better images" setting is 1e-3',
      ),
    tvL1: z.number().min(0).max(1e3).default(0).describe('Weight of TV-L1: Σ over the 4 shifted differences of mean |difference| (0 as the reference)'),
    l2: z.number().min(0).max(1e3).default(0).describe('Weight of the l2 prior: mean over images of each image\'s L2 norm (0 as the reference CIFAR code; ImageNet 1e-5)'),
  })
  .default({ crossEntropy: 1, bnStatistics: 10, firstBnMultiplier: 1, tvL2: 1e-4, tvL1: 0, l2: 0 })
  .describe('Weights of the loss terms');

const studentTrainingSchema = z
  .strictObject({
    stepsPerBatch: z.number().int().min(0).max(100_000).default(50).describe('KD steps of the ADI student after each new batch ("one new batch every 50 KD iterations" — the paper)'),
    batchSize: z.number().int().min(1).max(4096).default(128).describe('Images per KD step, drawn (with replacement) from every image made so far'),
    learningRate: z.number().gt(0).max(1).default(1e-3).describe('Adam learning rate of the student (constant)'),
    temperature: z.number().gt(0).max(100).default(3).describe('KD temperature of the student\'s training (the authors: 3)'),
  })
  .default({ stepsPerBatch: 50, batchSize: 128, learningRate: 1e-3, temperature: 3 })
  .describe('How the ADI student learns between batches (adaptive mode only)');

export const deepInversionConfigSchema = z.strictObject({
  count: z.number().int().min(1).max(1_000_000).default(2560).describe('Number of images to make'),
  batchSize: z.number().int().min(1).max(4096).default(256).describe('Images optimised together (the BN statistics are batch statistics; the reference: 256)'),
  iterations: z.number().int().min(1).max(100_000).default(2000).describe('Adam steps on each batch (the reference CIFAR code: 2000)'),
  learningRate: z.number().gt(0).max(10).default(0.1).describe('Peak Adam learning rate on the pixels (the reference CIFAR default 0.1; its README\'s paper setting 0.05)'),
  beta1: z.number().min(0).lt(1).default(0.9).describe('Adam β1 (the reference CIFAR code uses Adam\'s defaults; its ImageNet settings 0/1 use 0.5)'),
  beta2: z.number().min(0).lt(1).default(0.999).describe('Adam β2 (ImageNet settings 0/1 of the reference: 0.9)'),
  warmupIterations: z.number().int().min(0).max(100_000).default(0).describe('Linear learning-rate warm-up before the cosine decay to 0 (the reference ImageNet code: 100)'),
  weights: weightsSchema,
  jitter: z
    .number()
    .int()
    .min(0)
    .max(64)
    .default(2)
    .describe('Largest circular shift (pixels, per axis) drawn each iteration before the teacher sees the batch: the reference uses 2 for 32×32 images; 2 also suits 28×28 digits (about 1/16 of the side); use ~30 for 224×224'),
  flipProbability: z
    .number()
    .min(0)
    .max(1)
    .default(0)
    .describe('Probability of a horizontal flip each iteration: 0 (the reference CIFAR code does not flip, and digits are not mirror-symmetric); 0.5 for natural images (its ImageNet --do_flip)'),
  mode: z
    .enum(DEEP_INVERSION_MODES)
    .default('deep-inversion')
    .describe(
      '"deep-inversion": cross-entropy + BN statistics + priors; "adaptive" (ADI): also the competition term with a student trained by KD between batches; ' +
        '"deep-dream": cross-entropy + priors only (no BN term; for teachers without BatchNorm)',
    ),
  competition: z.number().min(0).max(100).default(0.2).describe('Weight of the ADI competition term 1 − JS(student, teacher) (adaptive mode; 0.2 as the paper)'),
  competitionTemperature: z.number().gt(0).max(100).default(3).describe('Softmax temperature of the competition term (3 as the reference)'),
  student: studentOverridesSchema(0.5).describe('The ADI student: overrides of the teacher\'s spec (adaptive mode only)'),
  studentTraining: studentTrainingSchema,
});
export type DeepInversionConfig = z.infer<typeof deepInversionConfigSchema>;

/** A seed for one part of the run, derived from the stage seed, so a resumed run redraws the same batches. */
export function derivedSeed(seed: number, ...parts: number[]): number {
  let h = seed >>> 0;
  for (const p of parts) h = (Math.imul(h ^ (p + 0x6d2b79f5), 0x9e3779b1) + 0x632be5ab) >>> 0;
  return new SeededRandom(h).deriveSeed();
}

const STUDENT_SEED = 0x5eed;
const KD_STREAM = 1;

/** What a checkpoint keeps beyond the shared synthesis state. */
interface ExtraState {
  bnHistory: number[];
  initialAgreement?: number;
  student?: Buffer;
}
const EXTRA_MAGIC = 'CDDIEXT1';

function encodeExtra(extra: ExtraState): Buffer {
  return encodeFramed(EXTRA_MAGIC, { bnHistory: extra.bnHistory, initialAgreement: extra.initialAgreement }, extra.student ? [extra.student] : []);
}

function decodeExtra(buffer: Buffer | undefined): ExtraState {
  if (buffer === undefined) throw new Error('the deep-inversion checkpoint lacks its plugin state; it was written by another plugin or version');
  const { header, body } = decodeFramed<Omit<ExtraState, 'student'>>(buffer, EXTRA_MAGIC, 'the deep-inversion plugin state (written by another plugin or version?)');
  return { ...header, student: body.length > 0 ? Buffer.from(body) : undefined };
}

function checkTeacher(teacher: ModelHandle, mode: DeepInversionConfig['mode']): { shape: [number, number, number]; numClasses: number } {
  let shape: [number, number, number];
  let numClasses: number;
  try {
    shape = modelInputShape(teacher);
    numClasses = modelNumClasses(teacher);
  } catch (err) {
    throw new PluginInputError((err as Error).message);
  }
  if (mode !== 'deep-dream' && !teacher.model.layers.some(isBatchNorm)) {
    throw new PluginInputError(
      `teacher ${teacher.name} has no BatchNormalization layers, so DeepInversion's feature-statistics term has nothing to match; ` +
        `use mode "deep-dream" (cross-entropy and image priors only) or a teacher with BatchNorm`,
    );
  }
  try {
    inputGradientForward(teacher.model);
  } catch (err) {
    if (err instanceof BnTapError) throw new PluginInputError(`teacher ${teacher.name} cannot be inverted: ${err.message}`);
    throw err;
  }
  return { shape, numClasses };
}

/** The loss weights the mode uses: deep-dream drops the BN term, only adaptive has the competition term. */
export function modeWeights(config: DeepInversionConfig): InversionWeights {
  return {
    ...config.weights,
    bnStatistics: config.mode === 'deep-dream' ? 0 : config.weights.bnStatistics,
    competition: config.mode === 'adaptive' ? config.competition : 0,
    competitionTemperature: config.competitionTemperature,
  };
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

async function synthesize(input: SynthesisInput, config: DeepInversionConfig, ctx: StageContext): Promise<SynthesisOutput> {
  const started = Date.now();
  const teacher = input.teacher;
  const { shape, numClasses } = checkTeacher(teacher, config.mode);
  const size = shape[0] * shape[1] * shape[2];
  const batches = Math.ceil(config.count / config.batchSize);
  const totalIterations = batches * config.iterations;
  const settings: DeepInversionBatchSettings = {
    iterations: config.iterations,
    learningRate: config.learningRate,
    beta1: config.beta1,
    beta2: config.beta2,
    warmupIterations: config.warmupIterations,
    jitter: config.jitter,
    flipProbability: config.flipProbability,
    weights: modeWeights(config),
  };
  const adaptive = config.mode === 'adaptive';
  const student = adaptive
    ? new AdiStudent(buildModel(studentSpecFrom(teacher, config.student, 'deep-inversion'), derivedSeed(ctx.seed, STUDENT_SEED)), config.studentTraining)
    : undefined;

  try {
    const images = new Float32Array(config.count * size);
    const teacherLogits = adaptive ? new Float32Array(config.count * numClasses) : undefined;
    let bestLosses: number[] = [];
    let bnHistory: number[] = [];
    let initialAgreement: number | undefined;
    let agreementBefore: number | undefined;
    let agreementAfter: number | undefined;
    let firstBatch = 0;
    let secondsBefore = 0;

    const saved = await loadSynthesisState(ctx.checkpoint);
    if (saved !== undefined) {
      const madeCount = Math.min(saved.batchesDone * config.batchSize, config.count);
      if (saved.images.length !== madeCount * size || (saved.lossHistory?.length ?? 0) !== saved.batchesDone) {
        throw new Error(`the deep-inversion checkpoint holds ${saved.images.length / size} images of ${saved.batchesDone} batches; this config makes ${madeCount} in that many`);
      }
      const extra = decodeExtra(saved.extra);
      images.set(saved.images);
      bestLosses = [...saved.lossHistory!];
      bnHistory = [...extra.bnHistory];
      initialAgreement = extra.initialAgreement;
      firstBatch = saved.batchesDone;
      secondsBefore = saved.seconds ?? 0;
      if (student !== undefined) {
        if (extra.student === undefined) throw new Error('the deep-inversion checkpoint of an adaptive run lacks the student');
        student.restore(extra.student);
        teacherLogits!.set((await predictRows(teacher.model, { images: saved.images, count: saved.images.length / size, shape }, 256, ctx.signal)).rows);
      }
      ctx.log.info({ batchesDone: saved.batchesDone }, 'deep-inversion: resuming from checkpoint');
    }
    let lastSaved = firstBatch * config.iterations;
    const resumedAt = Date.now();

    for (let b = firstBatch; b < batches; b++) {
      throwIfAborted(ctx.signal);
      const start = b * config.batchSize;
      const n = Math.min(config.batchSize, config.count - start);
      const targets = classBalancedTargets(start, n, numClasses);
      let result;
      try {
        result = await deepInversionBatch(
          {
            teacher: teacher.model,
            targets,
            seed: derivedSeed(ctx.seed, b),
            student: student?.model,
            onIteration: async (r) => {
              throwIfAborted(ctx.signal);
              ctx.report({ step: b * config.iterations + r.iteration + 1, total: totalIterations, metrics: { loss: r.loss, ...r.terms, imagesMade: start } });
              await yieldToEventLoop();
            },
          },
          settings,
        );
      } catch (err) {
        if (err instanceof DeepInversionBatchError) throw new DeepInversionBatchError(`batch ${b + 1} of ${batches}: ${err.message}`);
        throw err;
      }
      images.set(result.images, start * size);
      bestLosses.push(result.bestLoss);
      if (result.bestTerms.bnStatistics !== undefined) bnHistory.push(result.bestTerms.bnStatistics);

      if (student !== undefined) {
        const batchImages = images.subarray(start * size, (start + n) * size);
        const { rows: batchLogits } = await predictRows(teacher.model, { images: batchImages, count: n, shape }, 256, ctx.signal);
        teacherLogits!.set(batchLogits, start * numClasses);
        agreementBefore = await student.agreement(batchImages, batchLogits, shape, numClasses);
        initialAgreement ??= agreementBefore;
        const kdLoss = await student.train(
          { images, teacherLogits: teacherLogits!, count: start + n, shape, numClasses },
          new SeededRandom(derivedSeed(ctx.seed, b, KD_STREAM)),
          async () => {
            throwIfAborted(ctx.signal);
            await yieldToEventLoop();
          },
        );
        agreementAfter = await student.agreement(batchImages, batchLogits, shape, numClasses);
        ctx.report({
          step: (b + 1) * config.iterations,
          total: totalIterations,
          metrics: { loss: result.bestLoss, imagesMade: start + n, studentKdLoss: kdLoss, studentAgreementBefore: agreementBefore, studentAgreement: agreementAfter },
        });
      }

      const iterationsDone = (b + 1) * config.iterations;
      if (ctx.checkpoint !== undefined && b + 1 < batches && iterationsDone - lastSaved >= ctx.checkpoint.every) {
        const state: SynthesisState = {
          batchesDone: b + 1,
          iterationsDone,
          images: images.slice(0, (start + n) * size),
          lossHistory: bestLosses,
          seconds: secondsBefore + (Date.now() - resumedAt) / 1000,
          extra: encodeExtra({ bnHistory, initialAgreement, student: await student?.serialize() }),
        };
        await saveSynthesisState(ctx.checkpoint, state, iterationsDone);
        lastSaved = iterationsDone;
      }
    }

    const extraMetrics: Record<string, number> = { finalLoss: mean(bestLosses) };
    if (bnHistory.length > 0) extraMetrics.bnStatistics = mean(bnHistory);
    if (agreementAfter !== undefined) extraMetrics.studentAgreement = agreementAfter;
    if (agreementBefore !== undefined) extraMetrics.studentAgreementBefore = agreementBefore;
    if (initialAgreement !== undefined) extraMetrics.studentAgreementInitial = initialAgreement;
    const seconds = secondsBefore + (Date.now() - (saved === undefined ? started : resumedAt)) / 1000;
    return await finishSynthesis(
      teacher,
      { images, targets: classBalancedTargets(0, config.count, numClasses), count: config.count, shape, numClasses, seconds },
      { reference: input.reference, gridName: `${config.mode}-samples.png`, signal: ctx.signal, seed: ctx.seed, extraMetrics },
    );
  } finally {
    student?.dispose();
  }
}

/**
 * DeepInversion (Yin et al., CVPR 2020): images optimised from noise so that the teacher classifies
 * them as their targets while the statistics of every BatchNorm layer's input match its running
 * statistics, under image priors; Adaptive DeepInversion adds a competition term against a student
 * trained by KD between batches; deep-dream drops the BN term.
 */
export const plugin: SynthesisPlugin<DeepInversionConfig> = {
  name: 'deep-inversion',
  kind: 'synthesis',
  version: '1.0.0',
  description:
    'DeepInversion / Adaptive DeepInversion / DeepDream: optimises batches of pixels (Adam, cosine schedule, seeded jitter and flip, ' +
    'pixels clipped to [0, 1], best iterate kept) for CE(teacher, target) + bnStatistics·Σ BN-statistics distance + TV/l2 priors ' +
    '(+ competition·(1 − JS) against a KD-trained student in adaptive mode). Targets are class-balanced. Metrics: those of every ' +
    'synthesis stage plus finalLoss (mean over batches of the best loss), bnStatistics (mean best-iterate BN term) and, for ADI, ' +
    'studentAgreement (student vs teacher argmax on the last batch after the student trained on it), studentAgreementBefore (before) ' +
    'and studentAgreementInitial (the untrained student on the first batch).',
  configSchema: deepInversionConfigSchema,
  inputs: ['model'],
  output: 'synthetic-dataset',
  synthesize,
};
