import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { modelInputShape, type ModelHandle } from '../../core/models/model-spec';
import { buildModel } from '../../core/models/zoo';
import {
  PluginInputError,
  type DistillationInput,
  type DistillationOutput,
  type DistillationPlugin,
  type StageContext,
} from '../../core/plugins/contracts';
import { studentOverridesSchema, studentSpecFrom } from '../../core/plugins/student-spec';
import { SeededRandom } from '../../core/random';
import { trainableParams } from '../../core/training/optimizers';
import { crossEntropy, trainClassifier } from '../../core/training/trainer';
import { buildFactorDecoder, buildFactorEncoder } from './auto-encoder';
import { featureLayer, findFeatureLayer, withFeatureOutput } from './feature-map';
import { explorationLoss, FACTOR_DISTANCES, FACTOR_SPLITS, gatherChannels, inheritanceLoss, reconstructionL1, splitFactorChannels, type ChannelSplit } from './losses';

export * from './losses';
export { findFeatureLayer, featureLayer, withFeatureOutput } from './feature-map';
export { buildFactorEncoder, buildFactorDecoder } from './auto-encoder';

const trainingSchema = z.strictObject({
  epochs: z.number().int().min(1).max(1000),
  optimizer: z.enum(['sgd', 'adam']).describe('sgd uses momentum 0.9'),
  learningRate: z.number().gt(0).max(10),
});

export const ieKdConfigSchema = z.strictObject({
  student: studentOverridesSchema(0.5),
  teacherLayer: z.string().min(1).optional().describe("Teacher layer whose output is factorised; default: the teacher's last feature map before global pooling/flatten"),
  studentLayer: z.string().min(1).optional().describe("Student layer mapped to the student's factor; default: its last feature map before global pooling/flatten"),
  factorChannels: z.number().int().min(2).max(1024).default(32).describe('Channels of the factors (auto-encoder bottleneck)'),
  split: z.enum(FACTOR_SPLITS).default('natural').describe("'natural': factor channels [0, ⌈k/2⌉) inherit, the rest explore; 'random': a seeded random ⌈k/2⌉ channels inherit"),
  distance: z.enum(FACTOR_DISTANCES).default('l1').describe("'l1'/'l2': normalised factor-transfer distance (exploration = its negative); 'cosine': 1 − cos to inherit, |cos| to explore"),
  inheritWeight: z.number().min(0).max(1e4).default(1),
  exploreWeight: z.number().min(0).max(1e4).default(1),
  autoEncoder: trainingSchema.default({ epochs: 5, optimizer: 'adam', learningRate: 0.001 }).describe("Stage 1: the teacher feature map's auto-encoder (L1 reconstruction)"),
  epochs: z.number().int().min(1).max(1000).default(10),
  batchSize: z.number().int().min(1).max(4096).default(128),
  optimizer: z.enum(['sgd', 'adam']).default('adam').describe('sgd uses momentum 0.9'),
  learningRate: z.number().gt(0).max(10).default(0.001),
  weightDecay: z.number().min(0).max(1).default(0),
});
export type IeKdConfig = z.infer<typeof ieKdConfigSchema>;

/** Frees a model's weights (tf.layers models keep theirs until disposed). */
function disposeModel(model: tf.LayersModel): void {
  model.dispose();
}

function checkData(teacher: ModelHandle, data: DistillationInput['data'], numClasses: number): void {
  const expected = modelInputShape(teacher);
  if (data.shape.some((d, i) => d !== expected[i])) {
    throw new PluginInputError(`training images are ${data.shape.join('×')} but teacher ${teacher.name} takes ${expected.join('×')}`);
  }
  if (data.numClasses !== numClasses) throw new PluginInputError(`training data has ${data.numClasses} classes but teacher ${teacher.name} outputs ${numClasses}`);
}

function featureShape(layer: tf.layers.Layer): [number, number, number] {
  const s = layer.outputShape as number[];
  return [s[1], s[2], s[3]];
}

async function distill(input: DistillationInput, config: IeKdConfig, ctx: StageContext): Promise<DistillationOutput> {
  const { teacher, data } = input;
  const spec = studentSpecFrom(teacher, config.student, 'ie-kd');
  checkData(teacher, data, spec.numClasses);
  const started = Date.now();
  const random = new SeededRandom(ctx.seed);

  const teacherLayerName = config.teacherLayer ?? findFeatureLayer(teacher.model);
  const teacherShape = featureShape(featureLayer(teacher.model, teacherLayerName));
  const teacherFeatures = withFeatureOutput(teacher.model, teacherLayerName);
  const student = buildModel(spec, random.deriveSeed());
  const owned: tf.LayersModel[] = [];
  try {
    const studentLayerName = config.studentLayer ?? findFeatureLayer(student);
    const studentShape = featureShape(featureLayer(student, studentLayerName));
    if (studentShape[0] !== teacherShape[0] || studentShape[1] !== teacherShape[1]) {
      throw new PluginInputError(
        `the student's feature map ${studentLayerName} is ${studentShape[0]}×${studentShape[1]} but the teacher's ${teacherLayerName} is ${teacherShape[0]}×${teacherShape[1]}; ` +
          'choose teacherLayer and studentLayer with the same spatial size',
      );
    }
    const studentFeatures = withFeatureOutput(student, studentLayerName);
    const k = config.factorChannels;
    const encoder = buildFactorEncoder(teacherShape, k, random.deriveSeed(), 'teacher_encoder');
    const decoder = buildFactorDecoder(teacherShape, k, random.deriveSeed(), 'teacher_decoder');
    const studentEncoder = buildFactorEncoder(studentShape, k, random.deriveSeed(), 'student_encoder');
    owned.push(encoder, decoder, studentEncoder);
    const split: ChannelSplit = splitFactorChannels(k, config.split, config.split === 'random' ? random.permutation(k) : undefined);

    // The teacher's last-layer feature under the frozen network (inference mode: moving BN statistics).
    const teacherFeature = (images: tf.Tensor4D) => (teacherFeatures.apply(images, { training: false }) as tf.Tensor[])[0];
    const report = (stage: string, offset: number, total: number) => (step: number, _t: number, m: { loss: number; lr: number }) =>
      ctx.report({ step: offset + step, total, metrics: { [`${stage}Loss`]: m.loss, lr: m.lr } });
    const aeSteps = config.autoEncoder.epochs * Math.floor(data.count / Math.min(config.batchSize, data.count));
    const mainSteps = config.epochs * Math.floor(data.count / Math.min(config.batchSize, data.count));

    // Stage 1: auto-encoder of the teacher's feature map, L1 reconstruction.
    const ae = await trainClassifier(
      teacher.model,
      data,
      { ...config.autoEncoder, batchSize: config.batchSize, seed: random.deriveSeed() },
      {
        signal: ctx.signal,
        params: [...trainableParams(encoder), ...trainableParams(decoder)],
        onStep: report('autoEncoder', 0, aeSteps + mainSteps),
        batchLoss: (batch) => {
          const feature = teacherFeature(batch.images);
          const reconstruction = decoder.apply(encoder.apply(feature, { training: true }), { training: true }) as tf.Tensor;
          return reconstructionL1(reconstruction, feature);
        },
      },
    );

    // Stage 2: the student and its encoder; the teacher and its encoder are frozen.
    let lastInherit = NaN;
    let lastExplore = NaN;
    const main = await trainClassifier(
      student,
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
        params: [...trainableParams(student), ...trainableParams(studentEncoder)],
        onStep: report('student', aeSteps, aeSteps + mainSteps),
        batchLoss: (batch) => {
          const teacherFactor = encoder.apply(teacherFeature(batch.images), { training: false }) as tf.Tensor;
          const [feature, logits] = studentFeatures.apply(batch.images, { training: true }) as tf.Tensor[];
          const studentFactor = studentEncoder.apply(feature, { training: true }) as tf.Tensor;
          const inherit = inheritanceLoss(gatherChannels(studentFactor, split.inherit), gatherChannels(teacherFactor, split.inherit), config.distance);
          const explore = explorationLoss(gatherChannels(studentFactor, split.explore), gatherChannels(teacherFactor, split.explore), config.distance);
          // Read back cheaply for the metrics (the values are tiny scalars).
          lastInherit = inherit.dataSync()[0];
          lastExplore = explore.dataSync()[0];
          return tf.addN([crossEntropy(logits as tf.Tensor2D, batch.labels), tf.mul(inherit, config.inheritWeight), tf.mul(explore, config.exploreWeight)]) as tf.Scalar;
        },
      },
    );
    return {
      student: { name: `${teacher.name}-ie-kd-student`, model: student, spec },
      metrics: {
        autoEncoderLoss: ae.finalLoss,
        trainLoss: main.finalLoss,
        inheritLoss: lastInherit,
        exploreLoss: lastExplore,
        epochs: config.epochs,
        steps: main.steps,
        trainSeconds: (Date.now() - started) / 1000,
      },
    };
  } catch (err) {
    disposeModel(student);
    throw err;
  } finally {
    owned.forEach(disposeModel);
  }
}

/**
 * Inheritance and Exploration KD (Huang et al., CVPR 2021), with the teacher as the frozen pretrained
 * network (the reference code's names are inverted; this is the paper's meaning).
 */
export const plugin: DistillationPlugin<IeKdConfig> = {
  name: 'ie-kd',
  kind: 'distillation',
  version: '1.0.0',
  description:
    "Inheritance and Exploration KD. Stage 1 trains an auto-encoder (3× conv3×3+BN+LeakyReLU(0.1) to factorChannels, mirrored decoder, L1 " +
    "reconstruction) on the frozen teacher's feature map (teacherLayer, default its last feature map before global pooling/flatten). " +
    "Stage 2 trains the student (the teacher's spec with student overrides) and a student encoder of the same shape, mapping the student's " +
    'feature map (studentLayer, same default) to a factor with the same factorChannels: loss = CE + inheritWeight·inherit + exploreWeight·explore. ' +
    "Split semantics: the channel indices 0..k−1 of BOTH factors are split into an inherit set and an explore set (natural: first ⌈k/2⌉ / rest; " +
    "random: a seeded random ⌈k/2⌉ / rest) and the same indices are used on both sides: the student factor's inherit channels are pulled towards " +
    "the teacher factor's inherit channels, its explore channels pushed away from the teacher factor's explore channels. Distances: " +
    "l1/l2 = (Σ|x̂−ŷ|^p / numel)^(1/p) on per-example L2-normalised flattened factors (explore = its negative); cosine = 1 − cos (inherit), |cos| (explore), " +
    'batch means. The teacher and its encoder stay frozen (inference mode) in stage 2; only the student is output. Feature maps must have the same ' +
    'height and width. Metrics: autoEncoderLoss, trainLoss, inheritLoss, exploreLoss (last step), epochs, steps, trainSeconds.',
  configSchema: ieKdConfigSchema,
  inputs: ['model', 'dataset'],
  output: 'model',
  distill,
};
