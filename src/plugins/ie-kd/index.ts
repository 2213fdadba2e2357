import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { modelInputShape, type ModelHandle } from '../../core/models/model-spec';
import { buildModel } from '../../core/models/zoo';
import { predictRows } from '../../core/models/predict';
import { kdLoss } from '../../core/plugins/losses';
import {
  PluginInputError,
  StageCancelledError,
  type DistillationInput,
  type DistillationOutput,
  type DistillationPlugin,
  type StageContext,
} from '../../core/plugins/contracts';
import { studentOverridesSchema, studentSpecFrom } from '../../core/plugins/student-spec';
import { SeededRandom } from '../../core/random';
import { trainableParams } from '../../core/training/optimizers';
import { crossEntropy, trainClassifier } from '../../core/training/trainer';
import { buildFactorDecoder, buildFactorEncoder, encodeAutoEncoder, restoreAutoEncoder } from './auto-encoder';
import { beginPhase, loadPhase, phaseCheckpoint } from '../../core/checkpoints/phased-checkpoint';
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
  factorChannels: z.number().int().min(1).max(1024).default(32).describe("Channels of the factors: the teacher auto-encoder's bottleneck and the output of each of the student's two encoders"),
  split: z
    .enum(FACTOR_SPLITS)
    .default('natural')
    .describe("How the student's feature channels (c) are divided: 'natural': channels [0, ⌈c/2⌉) form the inheritance part, the rest the exploration part; 'random': a seeded random ⌈c/2⌉ channels inherit"),
  distance: z.enum(FACTOR_DISTANCES).default('l1').describe("'l1'/'l2': normalised factor-transfer distance (exploration = its negative); 'cosine': 1 − cos to inherit, |cos| to explore"),
  factorResize: z
    .enum(['bilinear', 'none'])
    .default('bilinear')
    .describe(
      "When the teacher's and the student's feature maps differ in height or width (a pair of different architectures): 'bilinear' resizes the teacher's factor to the student's " +
        "height and width (bilinear, half-pixel centres, as PyTorch's interpolate without align_corners) before the factors are compared; 'none' refuses such a pair",
    ),
  inheritWeight: z.number().min(0).max(1e4).default(1),
  exploreWeight: z.number().min(0).max(1e4).default(1),
  kd: z
    .strictObject({
      alpha: z.number().min(0).max(1).default(0),
      temperature: z.number().gt(0).max(100).default(4),
    })
    .default({ alpha: 0, temperature: 4 })
    .describe(
      "Optional Hinton KD term on the logits, for IE-KD combined with logit distillation (the paper presents IE-KD as combinable with existing distillation methods): " +
        'with alpha > 0 the cross-entropy is replaced by alpha·T²·KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − alpha)·CE, as in the kd plugin. ' +
        "alpha 0 (default): the paper's IE-KD loss alone (CE + inheritance + exploration)",
    ),
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

/** Largest set of precomputed teacher factors kept in memory (bytes); beyond it they are computed per batch. */
const STORED_FACTOR_BYTES = 512 * 1024 * 1024;

/** The frozen teacher's factor of every image of `data`, as [count, factorSize] rows. */
async function teacherFactors(data: DistillationInput['data'], factor: (images: tf.Tensor4D) => tf.Tensor, factorSize: number, ctx: StageContext): Promise<tf.Tensor2D> {
  const rows = new Float32Array(data.count * factorSize);
  const size = data.shape.reduce((a, b) => a * b, 1);
  const chunk = 256;
  for (let start = 0; start < data.count; start += chunk) {
    if (ctx.signal.aborted) throw new StageCancelledError();
    const n = Math.min(chunk, data.count - start);
    const chunkFactor = tf.tidy(() => factor(tf.tensor4d(data.images.subarray(start * size, (start + n) * size), [n, ...data.shape])));
    // Read asynchronously outside tidy (webgpu cannot read synchronously under Node).
    rows.set((await chunkFactor.data()) as Float32Array, start * factorSize);
    chunkFactor.dispose();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return tf.tensor2d(rows, [data.count, factorSize]);
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
  let stored: tf.Tensor2D | undefined;
  let storedLogits: tf.Tensor2D | undefined;
  try {
    const studentLayerName = config.studentLayer ?? findFeatureLayer(student);
    const studentShape = featureShape(featureLayer(student, studentLayerName));
    const resized = studentShape[0] !== teacherShape[0] || studentShape[1] !== teacherShape[1];
    if (resized && config.factorResize === 'none') {
      throw new PluginInputError(
        `the student's feature map ${studentLayerName} is ${studentShape[0]}×${studentShape[1]} but the teacher's ${teacherLayerName} is ${teacherShape[0]}×${teacherShape[1]}; ` +
          "choose teacherLayer and studentLayer with the same spatial size, or set factorResize to 'bilinear'",
      );
    }
    const studentFeatures = withFeatureOutput(student, studentLayerName);
    if (studentShape[2] < 2) {
      throw new PluginInputError(`the student's feature map ${studentLayerName} has ${studentShape[2]} channel; IE-KD splits it into an inheritance and an exploration part, so it needs at least 2`);
    }
    const k = config.factorChannels;
    // The student's feature channels, split into the inheritance part and the exploration part.
    const split: ChannelSplit = splitFactorChannels(studentShape[2], config.split, config.split === 'random' ? random.permutation(studentShape[2]) : undefined);
    const encoder = buildFactorEncoder(teacherShape, k, random.deriveSeed(), 'teacher_encoder');
    const decoder = buildFactorDecoder(teacherShape, k, random.deriveSeed(), 'teacher_decoder');
    const inheritEncoder = buildFactorEncoder([studentShape[0], studentShape[1], split.inherit.length], k, random.deriveSeed(), 'student_inherit_encoder');
    const exploreEncoder = buildFactorEncoder([studentShape[0], studentShape[1], split.explore.length], k, random.deriveSeed(), 'student_explore_encoder');
    owned.push(encoder, decoder, inheritEncoder, exploreEncoder);

    // The teacher's feature under the frozen network (inference mode: moving BN statistics).
    const teacherFeature = (images: tf.Tensor4D) => (teacherFeatures.apply(images, { training: false }) as tf.Tensor[])[0];
    const report = (stage: string, offset: number, total: number) => (step: number, _t: number, m: { loss: number; lr: number }) =>
      ctx.report({ step: offset + step, total, metrics: { [`${stage}Loss`]: m.loss, lr: m.lr } });
    const aeSteps = config.autoEncoder.epochs * Math.floor(data.count / Math.min(config.batchSize, data.count));
    const mainSteps = config.epochs * Math.floor(data.count / Math.min(config.batchSize, data.count));

    // Stage 1: auto-encoder of the teacher's feature map, L1 reconstruction. A durable run checkpoints both
    // phases in one slot; once the auto-encoder is done its weights travel with the student's checkpoints,
    // so a resumed stage never trains it again.
    const saved = await loadPhase(ctx.checkpoint);
    const aeSeed = random.deriveSeed();
    let autoEncoderLoss: number;
    let carry: Buffer;
    if (saved && saved.phase === 1) {
      autoEncoderLoss = await restoreAutoEncoder(saved.carry, [encoder, decoder]);
      carry = saved.carry;
      ctx.log.info({ autoEncoderSteps: aeSteps }, 'ie-kd resumed after its auto-encoder phase');
    } else {
      const ae = await trainClassifier(
        teacher.model,
        data,
        { ...config.autoEncoder, batchSize: config.batchSize, seed: aeSeed },
        {
          signal: ctx.signal,
          checkpoint: ctx.checkpoint && phaseCheckpoint(ctx.checkpoint, 0, saved),
          params: [...trainableParams(encoder), ...trainableParams(decoder)],
          checkpointModels: [encoder, decoder],
          onStep: report('autoEncoder', 0, aeSteps + mainSteps),
          batchLoss: (batch) => {
            const feature = teacherFeature(batch.images);
            const reconstruction = decoder.apply(encoder.apply(feature, { training: true }), { training: true }) as tf.Tensor;
            return reconstructionL1(reconstruction, feature);
          },
        },
      );
      autoEncoderLoss = ae.finalLoss;
      carry = await encodeAutoEncoder([encoder, decoder], autoEncoderLoss);
      if (ctx.checkpoint) await beginPhase(ctx.checkpoint, 1, carry, aeSteps);
    }

    // The teacher and its encoder are frozen from here on, so the teacher's factor of an image never
    // changes: compute it once when it fits in memory, else per batch. It has the student's height and
    // width (resized when the feature maps differ).
    const factorShape: [number, number, number] = [studentShape[0], studentShape[1], k];
    const teacherFactor = (images: tf.Tensor4D): tf.Tensor => {
      const factor = encoder.apply(teacherFeature(images), { training: false }) as tf.Tensor4D;
      return resized ? tf.image.resizeBilinear(factor, [factorShape[0], factorShape[1]], false, true) : factor;
    };
    const factorSize = factorShape[0] * factorShape[1] * k;
    stored = data.count * factorSize * 4 <= STORED_FACTOR_BYTES ? await teacherFactors(data, teacherFactor, factorSize, ctx) : undefined;
    const useKd = config.kd.alpha > 0;
    if (useKd) {
      const logits = data.teacherLogits ?? (await predictRows(teacher.model, data, Math.max(config.batchSize, 256), ctx.signal)).rows;
      storedLogits = tf.tensor2d(logits, [data.count, data.numClasses]);
    }

    // Stage 2: the student and its two encoders. The inheritance part's factor is pulled towards the
    // teacher's factor, the exploration part's factor pushed away from it.
    const studentReport = report('student', aeSteps, aeSteps + mainSteps);
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
        params: [...trainableParams(student), ...trainableParams(inheritEncoder), ...trainableParams(exploreEncoder)],
        checkpointModels: [inheritEncoder, exploreEncoder],
        checkpoint: ctx.checkpoint && phaseCheckpoint(ctx.checkpoint, 1, saved, carry, aeSteps),
        onStep: (step, total, m) => {
          lastInherit = m.extra?.inherit ?? lastInherit;
          lastExplore = m.extra?.explore ?? lastExplore;
          studentReport(step, total, m);
        },
        batchLoss: (batch) => {
          const target = stored ? tf.reshape(tf.gather(stored, tf.tensor1d(batch.indices, 'int32')), [batch.indices.length, ...factorShape]) : teacherFactor(batch.images);
          const [feature, logits] = studentFeatures.apply(batch.images, { training: true }) as tf.Tensor[];
          const inheritFactor = inheritEncoder.apply(gatherChannels(feature, split.inherit), { training: true }) as tf.Tensor;
          const exploreFactor = exploreEncoder.apply(gatherChannels(feature, split.explore), { training: true }) as tf.Tensor;
          const inherit = inheritanceLoss(inheritFactor, target, config.distance);
          const explore = explorationLoss(exploreFactor, target, config.distance);
          batch.keepMetric('inherit', inherit);
          batch.keepMetric('explore', explore);
          const base = storedLogits
            ? kdLoss(logits as tf.Tensor2D, tf.gather(storedLogits, tf.tensor1d(batch.indices, 'int32')) as tf.Tensor2D, batch.labels, config.kd.temperature, config.kd.alpha)
            : crossEntropy(logits as tf.Tensor2D, batch.labels);
          return tf.addN([base, tf.mul(inherit, config.inheritWeight), tf.mul(explore, config.exploreWeight)]) as tf.Scalar;
        },
      },
    );
    return {
      student: { name: `${teacher.name}-ie-kd-student`, model: student, spec },
      metrics: {
        autoEncoderLoss,
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
    stored?.dispose();
    storedLogits?.dispose();
  }
}

/**
 * Inheritance and Exploration KD (Huang et al., CVPR 2021), with the teacher as the frozen pretrained
 * network (the reference code's names are inverted; this is the paper's meaning). As in the paper and
 * the reference's `train_teacher` read with the names put right: the network being trained (the
 * student) is the one split into inheritance and exploration parts, each with its own encoder, and
 * both parts' factors are compared with the pretrained teacher's whole factor.
 */
export const plugin: DistillationPlugin<IeKdConfig> = {
  name: 'ie-kd',
  kind: 'distillation',
  version: '2.1.0',
  description:
    "Inheritance and Exploration KD. Stage 1 trains an auto-encoder (3× conv3×3+BN+LeakyReLU(0.1) to factorChannels, mirrored decoder, L1 " +
    "reconstruction) on the frozen teacher's feature map (teacherLayer, default its last feature map before global pooling/flatten); its encoder " +
    "gives the teacher's factor. Stage 2 trains the student (the teacher's spec with student overrides), whose feature map (studentLayer, same " +
    "default) is divided by channel into an inheritance part and an exploration part (split natural: first ⌈c/2⌉ / rest; random: a seeded random " +
    "⌈c/2⌉ / rest); each part has its own encoder (same design, factorChannels out), trained with the student. " +
    'loss = CE + inheritWeight·inherit(inheritance factor, teacher factor) + exploreWeight·explore(exploration factor, teacher factor); with kd.alpha > 0 ' +
    "CE is replaced by the kd plugin's Hinton loss on the teacher's logits (IE-KD combined with KD). Distances: " +
    "l1/l2 = (Σ|x̂−ŷ|^p / numel)^(1/p) on per-example L2-normalised flattened factors, explore = its negative; cosine = 1 − cos (inherit), |cos| (explore), " +
    'batch means. The teacher and its encoder stay frozen (inference mode) in stage 2; only the student is output. When the two feature maps differ in ' +
    "height or width, the teacher's factor is resized to the student's (factorResize 'bilinear', default) or the pair is refused ('none'). Metrics: autoEncoderLoss, trainLoss, inheritLoss, exploreLoss (last step), epochs, steps, trainSeconds.",
  configSchema: ieKdConfigSchema,
  inputs: ['model', 'dataset'],
  output: 'model',
  distill,
};
