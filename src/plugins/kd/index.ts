import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { modelInputShape, type ModelHandle, type ModelSpec } from '../../core/models/model-spec';
import { buildModel } from '../../core/models/zoo';
import { predictRows } from '../../core/models/predict';
import {
  PluginInputError,
  type DistillationInput,
  type DistillationOutput,
  type DistillationPlugin,
  type StageContext,
} from '../../core/plugins/contracts';
import { kdLoss } from '../../core/plugins/losses';
import { SeededRandom } from '../../core/random';
import { trainClassifier, type TrainSummary } from '../../core/training/trainer';
import { studentOverridesSchema, studentSpecFrom } from '../../core/plugins/student-spec';

export { kdLoss } from '../../core/plugins/losses';

export const kdConfigSchema = z.strictObject({
  student: studentOverridesSchema(0.5),
  temperature: z.number().gt(0).max(100).default(4).describe('Softmax temperature T of the soft targets'),
  alpha: z.number().min(0).max(1).default(0.9).describe('Weight of the KD term (times T²); 1 − alpha weighs cross-entropy on the labels'),
  epochs: z.number().int().min(1).max(1000).default(10),
  batchSize: z.number().int().min(1).max(4096).default(128),
  optimizer: z.enum(['sgd', 'adam']).default('adam').describe('sgd uses momentum 0.9'),
  learningRate: z.number().gt(0).max(10).default(0.001),
  weightDecay: z.number().min(0).max(1).default(0),
  augment: z
    .strictObject({
      flip: z.boolean().default(false).describe('Random horizontal flips (leave off for digits)'),
      cropPadding: z.number().int().min(0).max(16).default(0).describe('Random crops after zero-padding by this many pixels'),
    })
    .default({ flip: false, cropPadding: 0 })
    .describe('Augmentation; when on, the teacher sees the same augmented batch as the student'),
});
export type KdConfig = z.infer<typeof kdConfigSchema>;

/** The student's spec: the teacher's spec (or its shapes) with the config's architecture, width and depth. */
export function studentSpec(teacher: ModelHandle, student: KdConfig['student']): ModelSpec {
  return studentSpecFrom(teacher, student, 'kd');
}

async function distill(input: DistillationInput, config: KdConfig, ctx: StageContext): Promise<DistillationOutput> {
  const { teacher, data } = input;
  const spec = studentSpec(teacher, config.student);
  const expected = modelInputShape(teacher);
  if (data.shape.some((d, i) => d !== expected[i])) {
    throw new PluginInputError(`training images are ${data.shape.join('×')} but teacher ${teacher.name} takes ${expected.join('×')}`);
  }
  if (data.numClasses !== spec.numClasses) {
    throw new PluginInputError(`training data has ${data.numClasses} classes but teacher ${teacher.name} outputs ${spec.numClasses}`);
  }
  const started = Date.now();

  // Without augmentation the teacher's answer on an image never changes: compute it once (or reuse
  // the logits a synthesis stage stored) and gather rows per batch. With augmentation the teacher
  // must see the same augmented batch as the student.
  const augmenting = config.augment.flip || config.augment.cropPadding > 0;
  let stored: tf.Tensor2D | undefined;
  if (!augmenting) {
    const logits = data.teacherLogits ?? (await predictRows(teacher.model, data, Math.max(config.batchSize, 256), ctx.signal)).rows;
    stored = tf.tensor2d(logits, [data.count, data.numClasses]);
  }

  const random = new SeededRandom(ctx.seed);
  const student = buildModel(spec, random.deriveSeed());
  let summary: TrainSummary;
  try {
    summary = await trainClassifier(
      student,
      data,
      {
        epochs: config.epochs,
        batchSize: config.batchSize,
        optimizer: config.optimizer,
        learningRate: config.learningRate,
        weightDecay: config.weightDecay,
        augment: config.augment,
        seed: random.deriveSeed(),
      },
      {
        signal: ctx.signal,
        onStep: (step, total, metrics) => ctx.report({ step, total, metrics: { loss: metrics.loss, lr: metrics.lr } }),
        checkpoint: ctx.checkpoint,
        // Runs inside the trainer's gradient tape, which differentiates the student's variables only.
        lossFn: (studentLogits, batch) => {
          const teacherLogits = stored
            ? tf.gather(stored, tf.tensor1d(batch.indices, 'int32'))
            : (teacher.model.predict(batch.images) as tf.Tensor2D);
          return kdLoss(studentLogits, teacherLogits as tf.Tensor2D, batch.labels, config.temperature, config.alpha);
        },
      },
    );
  } catch (err) {
    student.dispose();
    throw err;
  } finally {
    stored?.dispose();
  }
  return {
    student: { name: `${teacher.name}-kd-student`, model: student, spec },
    metrics: { trainLoss: summary.finalLoss, epochs: config.epochs, steps: summary.steps, trainSeconds: (Date.now() - started) / 1000 },
  };
}

/**
 * Hinton knowledge distillation: a zoo student (the teacher's architecture at a smaller width unless
 * configured otherwise) trained on the teacher's temperature-softened outputs and the labels.
 */
export const plugin: DistillationPlugin<KdConfig> = {
  name: 'kd',
  kind: 'distillation',
  version: '1.0.0',
  description:
    "Hinton knowledge distillation: trains a zoo student (the teacher's spec with student.architecture/width/depth) on " +
    'alpha·T²·KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − alpha)·cross-entropy(labels). Uses the teacher logits ' +
    'stored with a synthetic set, else runs the teacher in inference mode. Metrics: trainLoss (mean over the last epoch), epochs, steps, trainSeconds.',
  configSchema: kdConfigSchema,
  inputs: ['model', 'dataset'],
  output: 'model',
  distill,
};
