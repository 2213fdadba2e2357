/**
 * The benchmark workloads, shared by bench/backend.ts (timing) and bench/profile-step.ts (per-kernel
 * profile): one SGD training step and one DeepInversion input-gradient step of a zoo model.
 */
import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../../src/core/models/zoo';
import type { ModelSpec } from '../../src/core/models/model-spec';
import { SeededRandom } from '../../src/core/random';
import { bnStatisticsLoss, tapBatchNormInputs } from '../../src/core/tensors/bn-taps';
import { inputGradientForward } from '../../src/core/tensors/input-gradient';

export interface BenchModel {
  id: 'lenet5-bn' | 'resnet20' | 'resnet18';
  label: string;
  spec: ModelSpec;
  batch: number;
}

export const BENCH_MODELS: BenchModel[] = [
  { id: 'lenet5-bn', label: 'LeNet-5-BN 28×28, batch 256', spec: { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 }, batch: 256 },
  { id: 'resnet20', label: 'CIFAR ResNet-20, batch 128', spec: { architecture: 'resnet-cifar', inputShape: [32, 32, 3], numClasses: 10, width: 1, depth: 20 }, batch: 128 },
  { id: 'resnet18', label: 'CIFAR ResNet-18, batch 128', spec: { architecture: 'resnet-basic', inputShape: [32, 32, 3], numClasses: 10, width: 1, depth: 18 }, batch: 128 },
];

/** The models the CPU benchmark runs by default: ResNet-18 (~0.56 GFLOP per image forward) is for accelerators. */
export const CPU_BENCH_MODEL_IDS: BenchModel['id'][] = ['lenet5-bn', 'resnet20'];

export const WORKS = ['train', 'inversion'] as const;
export type Work = (typeof WORKS)[number];
export const WORK_LABEL: Record<Work, string> = { train: 'training step (SGD, cross-entropy)', inversion: 'input-gradient step (CE + BN statistics)' };

const LEARNING_RATE = 0.01;

/** Seeded images and labels of one model's batch, on the current backend. */
export function makeBatch(model: BenchModel, seed: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const random = new SeededRandom(seed);
  const labels = Array.from({ length: model.batch }, () => random.int(model.spec.numClasses));
  return tf.tidy(() => ({
    x: tf.randomNormal([model.batch, ...model.spec.inputShape], 0, 1, 'float32', random.deriveSeed()) as tf.Tensor4D,
    y: tf.oneHot(labels, model.spec.numClasses) as tf.Tensor2D,
  }));
}

export interface BenchWorkload {
  /** One step; finishes its work (reads the loss) before resolving. */
  step: () => Promise<void>;
  dispose: () => void;
}

/**
 * Builds the model, its batch and the step of `work` on the current backend. The inversion step
 * runs the teacher in inference mode through the input-only gradient path (no filter gradients)
 * unless `layersInversion` asks for the layers model's own ops (the path before issue 4).
 */
export function makeWorkload(bm: BenchModel, work: Work, seed: number, options: { layersInversion?: boolean } = {}): BenchWorkload {
  const model = buildModel(bm.spec, seed);
  const { x, y } = makeBatch(bm, seed);
  if (work === 'train') {
    const optimizer = tf.train.sgd(LEARNING_RATE);
    return {
      step: async () => {
        const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, true)!;
        await loss.data();
        loss.dispose();
      },
      dispose: () => {
        optimizer.dispose();
        tf.dispose([x, y]);
        model.dispose();
      },
    };
  }
  const forward = options.layersInversion ? tapBatchNormInputs(model) : inputGradientForward(model);
  const images = tf.variable(x.clone(), false);
  const lossOf = (im: tf.Tensor) =>
    tf.tidy(() => {
      const { logits, taps } = forward(im, { training: false });
      return tf.add(tf.losses.softmaxCrossEntropy(y, logits), bnStatisticsLoss(taps)) as tf.Scalar;
    });
  return {
    step: async () => {
      const { value, grad } = tf.valueAndGrad(lossOf)(images);
      // assign shares the new tensor's data; the tensor itself is still ours to dispose.
      const next = tf.tidy(() => tf.sub(images, tf.mul(grad, LEARNING_RATE))) as tf.Tensor4D;
      images.assign(next);
      next.dispose();
      await value.data();
      tf.dispose([value, grad]);
    },
    dispose: () => {
      tf.dispose([images, x, y]);
      model.dispose();
    },
  };
}
