import * as tf from '@tensorflow/tfjs';
import { kdLoss } from '../../core/plugins/losses';
import type { SeededRandom } from '../../core/random';
import { createOptimizer, trainableParams, type ParamOptimizer } from '../../core/training/optimizers';
import { encodeTrainingState, restoreTrainingState } from '../../core/training/train-checkpoint';

/** How the ADI student learns between batches. */
export interface AdiStudentTraining {
  /** KD steps after each new batch (the paper: one new batch every 50 KD iterations). */
  stepsPerBatch: number;
  batchSize: number;
  /** Adam learning rate (constant). */
  learningRate: number;
  /** KD temperature (the authors: 3). */
  temperature: number;
}

/** Images made so far with the teacher's logits on them (flat NHWC pixels and rows of logits). */
export interface KdPool {
  images: Float32Array;
  teacherLogits: Float32Array;
  count: number;
  shape: [number, number, number];
  numClasses: number;
}

const MAGIC = 'CDADIST1';

/**
 * Adaptive DeepInversion's student, trained for real: between batches it takes `stepsPerBatch` KD
 * steps (T²·KL(softmax(t/T) ‖ softmax(s/T)), Adam) on minibatches drawn from every image made so far,
 * and the next batch's competition term uses it as it then is. (The reference code's student is
 * never updated: an untrained ResNet-18 on CIFAR, a frozen pretrained one on ImageNet.)
 */
export class AdiStudent {
  private readonly optimizer: ParamOptimizer;

  constructor(
    readonly model: tf.LayersModel,
    private readonly training: AdiStudentTraining,
  ) {
    this.optimizer = createOptimizer(trainableParams(model), { kind: 'adam' });
  }

  /** KD steps on random minibatches (with replacement) of `pool`; returns the mean loss. */
  async train(pool: KdPool, random: SeededRandom, onStep?: () => Promise<void>): Promise<number> {
    const size = pool.shape[0] * pool.shape[1] * pool.shape[2];
    const n = Math.min(this.training.batchSize, pool.count);
    const images = new Float32Array(n * size);
    const logits = new Float32Array(n * pool.numClasses);
    const variables = this.model.trainableWeights.map((w) => w.read() as tf.Variable);
    let total = 0;
    for (let step = 0; step < this.training.stepsPerBatch; step++) {
      for (let i = 0; i < n; i++) {
        const j = random.int(pool.count);
        images.set(pool.images.subarray(j * size, (j + 1) * size), i * size);
        logits.set(pool.teacherLogits.subarray(j * pool.numClasses, (j + 1) * pool.numClasses), i * pool.numClasses);
      }
      const x = tf.tensor4d(images, [n, ...pool.shape]);
      const t = tf.tensor2d(logits, [n, pool.numClasses]);
      const dummyLabels = tf.zeros([n], 'int32');
      let value: tf.Scalar | undefined;
      let grads: tf.NamedTensorMap = {};
      try {
        // Training mode: BatchNorm uses batch statistics and moves its running statistics.
        ({ value, grads } = tf.variableGrads(
          () => kdLoss(this.model.apply(x, { training: true }) as tf.Tensor2D, t, dummyLabels, this.training.temperature, 1),
          variables,
        ));
        tf.tidy(() => this.optimizer.step(variables.map((v) => grads[v.name] ?? tf.zerosLike(v)), this.training.learningRate));
        const loss = (await value.data())[0];
        if (!Number.isFinite(loss)) throw new Error(`the ADI student's KD loss became ${loss}; lower studentTraining.learningRate`);
        total += loss;
      } finally {
        tf.dispose([x, t, dummyLabels, ...(value ? [value] : []), ...Object.values(grads)]);
      }
      await onStep?.();
    }
    return total / this.training.stepsPerBatch;
  }

  /** Share of `images` on which the student's argmax equals the teacher's (rows of `teacherLogits`). */
  async agreement(images: Float32Array, teacherLogits: Float32Array, shape: [number, number, number], numClasses: number): Promise<number> {
    const count = teacherLogits.length / numClasses;
    const same = tf.tidy(() => {
      const s = tf.argMax(this.model.apply(tf.tensor4d(images, [count, ...shape]), { training: false }) as tf.Tensor, 1);
      const t = tf.argMax(tf.tensor2d(teacherLogits, [count, numClasses]), 1);
      return tf.sum(tf.cast(tf.equal(s, t), 'float32'));
    });
    const agree = (await same.data())[0];
    same.dispose();
    return agree / count;
  }

  /** Every weight (BN running statistics too), the optimizer's step count and slots, as one buffer. */
  serialize(): Promise<Buffer> {
    return encodeTrainingState(MAGIC, {}, this.weights(), this.optimizer);
  }

  /** Restores what `serialize` wrote; a buffer of another student (shapes differ) is an error. */
  restore(buffer: Buffer): void {
    restoreTrainingState(buffer, MAGIC, 'an ADI student checkpoint', this.weights(), this.optimizer);
  }

  private weights(): tf.Variable[] {
    return this.model.weights.map((w) => w.read() as tf.Variable);
  }

  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
  }
}
