import * as tf from '@tensorflow/tfjs';
import { kdLoss } from '../../core/plugins/losses';
import type { SeededRandom } from '../../core/random';
import { createOptimizer, trainableParams, type ParamOptimizer } from '../../core/training/optimizers';

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
  async serialize(): Promise<Buffer> {
    const { steps, slots } = this.optimizer.state();
    const tensors = [...this.model.weights.map((w) => w.read()), ...slots];
    const arrays: Buffer[] = [];
    for (const t of tensors) {
      const data = (await t.data()) as Float32Array;
      arrays.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
    const header = Buffer.from(JSON.stringify({ steps, shapes: tensors.map((t) => t.shape) }));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(header.length);
    return Buffer.concat([Buffer.from(MAGIC), length, header, ...arrays]);
  }

  /** Restores what `serialize` wrote; a buffer of another student (shapes differ) is an error. */
  restore(buffer: Buffer): void {
    if (buffer.subarray(0, MAGIC.length).toString() !== MAGIC) throw new Error('not an ADI student checkpoint (bad magic)');
    let offset = MAGIC.length;
    const headerLength = buffer.readUInt32LE(offset);
    offset += 4;
    const header = JSON.parse(buffer.subarray(offset, offset + headerLength).toString()) as { steps: number; shapes: number[][] };
    offset += headerLength;
    const weights = this.model.weights.map((w) => w.read() as tf.Variable);
    const slots = this.optimizer.state().slots;
    const expected = [...weights, ...slots].map((t) => t.shape.join('x'));
    if (header.shapes.length !== expected.length || header.shapes.some((s, i) => s.join('x') !== expected[i])) {
      throw new Error('the ADI student checkpoint belongs to a different student (weight shapes differ)');
    }
    const arrays = header.shapes.map((shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(buffer.subarray(offset, offset + n * 4));
      offset += n * 4;
      return out;
    });
    weights.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(arrays[i], v.shape))));
    this.optimizer.restore(header.steps, arrays.slice(weights.length));
  }

  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
  }
}
