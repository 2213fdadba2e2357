import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { modelInputShape } from '../../core/models/model-spec';
import {
  PluginInputError,
  type DistillationInput,
  type DistillationOutput,
  type DistillationPlugin,
  type StageContext,
} from '../../core/plugins/contracts';
import { softenedKlDivergence } from '../../core/plugins/losses';
import { studentOverridesSchema, studentSpecFrom } from '../../core/plugins/student-spec';
import { SeededRandom, uniformForBatch } from '../../core/random';
import { crossEntropy, trainClassifier } from '../../core/training/trainer';
import { augmentContextFeature, crossEntropyInputGradient, gradientOrthogonality } from './losses';
import { buildDecAugNet, denseKernel, type DecAugNet } from './model';

export * from './losses';
export { buildDecAugNet, denseKernel, type DecAugNet } from './model';

export const decAugConfigSchema = z.strictObject({
  student: studentOverridesSchema(1),
  branchUnits: z.number().int().min(1).max(4096).default(64).describe('Width of the (linear) category and context branches'),
  numContexts: z.number().int().min(2).max(100000).optional().describe('Number of context labels; default: the largest context label in the data + 1'),
  categoryWeight: z.number().min(0).max(100).default(0.01).describe('balance1: weight of the category-branch cross-entropy'),
  contextWeight: z.number().min(0).max(100).default(0.01).describe('balance2: weight of the context-branch cross-entropy'),
  orthogonalityWeight: z.number().min(0).max(100).default(0.01).describe('balanceorth: weight of Σ_batch cos² of the two branch-loss gradients w.r.t. the shared feature'),
  perturbation: z.number().min(0).max(100).default(1).describe('Semantic augmentation: the context feature moves by perturbation·U(0,1) along its normalised loss gradient'),
  orthogonalityHoldsProbabilities: z
    .boolean()
    .default(false)
    .describe(
      'true: the branch softmax probabilities inside the orthogonality term are held constant (as the reference code does), so the term trains only the branch and head kernels; false: it is also differentiated through the probabilities into the backbone',
    ),
  epsilon: z.number().gt(0).max(1).default(1e-8).describe('Added to gradient norms before normalising'),
  kdWeight: z.number().min(0).max(100).default(0).describe("Weight of an optional KD term T²·KL(teacher ‖ final) on the teacher's softened logits; 0 = no teacher term"),
  temperature: z.number().gt(0).max(100).default(4),
  epochs: z.number().int().min(1).max(1000).default(10),
  batchSize: z.number().int().min(1).max(4096).default(64),
  optimizer: z.enum(['sgd', 'adam']).default('adam').describe('sgd uses momentum 0.9'),
  learningRate: z.number().gt(0).max(10).default(0.001),
  weightDecay: z.number().min(0).max(1).default(0),
});
export type DecAugConfig = z.infer<typeof decAugConfigSchema>;

export interface DecAugLossParts {
  total: tf.Scalar;
  final: tf.Scalar;
  category: tf.Scalar;
  context: tf.Scalar;
  orthogonality: tf.Scalar;
}

/**
 * DecAug's training loss on one batch (call inside a gradient tape or tidy). `augmentScale` is
 * perturbation·u for this batch (0 turns the augmentation off).
 */
export function decAugLoss(
  net: DecAugNet,
  images: tf.Tensor4D,
  labels: tf.Tensor1D,
  contexts: tf.Tensor1D,
  weights: Pick<DecAugConfig, 'categoryWeight' | 'contextWeight' | 'orthogonalityWeight' | 'epsilon'> & Partial<Pick<DecAugConfig, 'orthogonalityHoldsProbabilities'>>,
  augmentScale: number,
  training = true,
): DecAugLossParts & { logits: tf.Tensor2D } {
  const [, categoryFeature, contextFeature] = net.trunk.apply(images, { training }) as tf.Tensor2D[];
  const categoryLogits = net.categoryHead.apply(categoryFeature) as tf.Tensor2D;
  const contextLogits = net.contextHead.apply(contextFeature) as tf.Tensor2D;
  // ∂CE/∂f through each linear branch and its head, per example.
  const hold = weights.orthogonalityHoldsProbabilities ?? false;
  const categoryGrad = crossEntropyInputGradient(categoryLogits, labels, [denseKernel(net.categoryBranch), denseKernel(net.categoryHead)], hold);
  const contextGrad = crossEntropyInputGradient(contextLogits, contexts, [denseKernel(net.contextBranch), denseKernel(net.contextHead)], hold);
  const orthogonality = gradientOrthogonality(categoryGrad, contextGrad, weights.epsilon);
  const augmented = augmentScale > 0 ? augmentContextFeature(contextFeature, contextLogits, contexts, denseKernel(net.contextHead), augmentScale, weights.epsilon) : contextFeature;
  const logits = net.finalClassifier.apply(tf.concat([categoryFeature, augmented], 1)) as tf.Tensor2D;
  const final = crossEntropy(logits, labels);
  const category = crossEntropy(categoryLogits, labels);
  const context = crossEntropy(contextLogits, contexts);
  const total = tf.addN([final, tf.mul(category, weights.categoryWeight), tf.mul(context, weights.contextWeight), tf.mul(orthogonality, weights.orthogonalityWeight)]) as tf.Scalar;
  return { total, final, category, context, orthogonality, logits };
}

function numContextsOf(data: DistillationInput['data'], configured: number | undefined): number {
  const contexts = data.contexts;
  if (!contexts || contexts.length !== data.count) {
    throw new PluginInputError('decaug needs a context label per training image (data.contexts, e.g. Colored-MNIST\'s colour); this data set has none');
  }
  let max = -1;
  for (let i = 0; i < contexts.length; i++) {
    const c = contexts[i];
    if (!(Number.isInteger(c) && c >= 0)) throw new PluginInputError(`context label ${c} of image ${i} is not a non-negative integer`);
    if (c > max) max = c;
  }
  const n = configured ?? max + 1;
  if (max >= n) throw new PluginInputError(`context label ${max} is outside 0..${n - 1}; raise numContexts`);
  if (n < 2) throw new PluginInputError('decaug needs at least 2 context labels; every training image has context 0');
  return n;
}

async function distill(input: DistillationInput, config: DecAugConfig, ctx: StageContext): Promise<DistillationOutput> {
  const { teacher, data } = input;
  const spec = studentSpecFrom(teacher, config.student, 'decaug');
  const expected = modelInputShape(teacher);
  if (data.shape.some((d, i) => d !== expected[i])) {
    throw new PluginInputError(`training images are ${data.shape.join('×')} but teacher ${teacher.name} takes ${expected.join('×')}`);
  }
  if (data.numClasses !== spec.numClasses) throw new PluginInputError(`training data has ${data.numClasses} classes but teacher ${teacher.name} outputs ${spec.numClasses}`);
  const numContexts = numContextsOf(data, config.numContexts);
  const contextsOf = data.contexts!;
  const started = Date.now();
  const random = new SeededRandom(ctx.seed);
  const net = buildDecAugNet(spec, config.branchUnits, numContexts, random.deriveSeed());
  const augmentSeed = random.deriveSeed();
  const last = { final: NaN, category: NaN, context: NaN, orthogonality: NaN };
  try {
    const summary = await trainClassifier(
      net.inference,
      data,
      {
        epochs: config.epochs,
        batchSize: config.batchSize,
        optimizer: config.optimizer,
        learningRate: config.learningRate,
        weightDecay: config.weightDecay,
        seed: random.deriveSeed(),
      },
      {
        signal: ctx.signal,
        checkpoint: ctx.checkpoint,
        params: net.params(),
        onStep: (step, total, m) => {
          if (m.extra) Object.assign(last, m.extra);
          ctx.report({ step, total, metrics: { loss: m.loss, lr: m.lr } });
        },
        batchLoss: (batch) => {
          const contexts = tf.tensor1d(Int32Array.from(batch.indices, (i) => contextsOf[i]), 'int32');
          // One U(0,1) draw per batch, as in the reference; fixed by the batch, so a resumed run draws the same.
          const scale = config.perturbation * uniformForBatch(augmentSeed, batch.indices);
          const parts = decAugLoss(net, batch.images, batch.labels, contexts, config, scale);
          batch.keepMetric('final', parts.final);
          batch.keepMetric('category', parts.category);
          batch.keepMetric('context', parts.context);
          batch.keepMetric('orthogonality', parts.orthogonality);
          if (config.kdWeight === 0) return parts.total;
          const teacherLogits = teacher.model.apply(batch.images, { training: false }) as tf.Tensor2D;
          const kd = tf.mul(softenedKlDivergence(parts.logits, teacherLogits, config.temperature), config.kdWeight * config.temperature ** 2);
          return tf.add(parts.total, kd) as tf.Scalar;
        },
      },
    );
    return {
      student: { name: `${teacher.name}-decaug`, model: net.inference },
      metrics: {
        trainLoss: summary.finalLoss,
        finalLoss: last.final,
        categoryLoss: last.category,
        contextLoss: last.context,
        orthogonality: last.orthogonality,
        epochs: config.epochs,
        steps: summary.steps,
        trainSeconds: (Date.now() - started) / 1000,
      },
    };
  } catch (err) {
    net.inference.dispose();
    throw err;
  } finally {
    net.disposeTrainingOnly();
  }
}

/** DecAug (Bai et al., AAAI 2021): decomposed category/context features, gradient orthogonality, semantic augmentation. */
export const plugin: DistillationPlugin<DecAugConfig> = {
  name: 'decaug',
  kind: 'distillation',
  version: '1.0.0',
  description:
    "DecAug for out-of-distribution robustness. Model: a zoo backbone (the teacher's spec with student overrides, width 1 by default) up to its " +
    'penultimate feature f; a linear category branch and a linear context branch on f (branchUnits each); a category classifier and a context classifier on ' +
    'them; a final classifier on [category feature, context feature]. Loss (cross-entropies on logits, softmax once): CE(final, label) + ' +
    'categoryWeight·CE(category, label) + contextWeight·CE(context, context label) + orthogonalityWeight·Σ_batch cos²(∂CE_cat/∂f, ∂CE_ctx/∂f), ' +
    'the per-example gradients computed analytically through the linear branches ((softmax − onehot)·Kᵀ…) and differentiated through ' +
    '(orthogonalityHoldsProbabilities: true holds the softmax constant there, as the reference code does, so the term trains only the branch and head kernels). ' +
    'Semantic augmentation (training only): the context feature fed to the final classifier moves by perturbation·u along the per-example ' +
    'normalised ∂CE_ctx/∂(context feature), u ~ U(0,1) drawn once per batch from the stage seed, direction held constant. Optional kdWeight·T²·KL ' +
    "(teacher ‖ final) term. Context labels come from the data set's contexts (PluginInputError without them). Defaults: weights 0.01/0.01/0.01, " +
    'perturbation 1 (the paper); Adam lr 1e-3, batch 64 (the reference used SGD 0.05 on ResNet-18/PACS; Adam is steadier on small data). ' +
    'Exported model: images → final logits (backbone, both branches, final classifier; no context head), plain tf.layers. ' +
    'Metrics: trainLoss, finalLoss, categoryLoss, contextLoss, orthogonality (last step), epochs, steps, trainSeconds.',
  configSchema: decAugConfigSchema,
  inputs: ['model', 'dataset'],
  output: 'model',
  distill,
};
