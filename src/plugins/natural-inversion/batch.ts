import * as tf from '@tensorflow/tfjs';
import { throwIfDeviceErrors } from '../../core/tensors/backend';
import { PluginInputError, throwIfAborted } from '../../core/plugins/contracts';
import { SeededRandom } from '../../core/random';
import { jitterAndFlip, randomJitter } from '../../core/synthesis/image-priors';
import { inversionLoss, type InversionWeights } from '../../core/synthesis/inversion-loss';
import type { TappedModel } from '../../core/tensors/bn-taps';
import { createOptimizer, type ParamOptimizer } from '../../core/training/optimizers';
import { learningRateAt } from '../../core/training/trainer';
import { yieldToEventLoop } from '../../core/event-loop';
import { channelScaledImage, generatorPixels, initialAlpha } from './channel-scaling';
import type { FeatureExtractor, PyramidLevel } from './feature-pyramid';
import { FeatureTransferPyramid } from './ftp';
import { ConditionalGenerator } from './generator';

/** The frozen teacher, prepared once per stage. */
export interface PreparedTeacher {
  name: string;
  shape: [number, number, number];
  numClasses: number;
  /** Logits and BN inputs, with an input-only gradient (no teacher weight gradients). */
  forward: TappedModel;
  levels: PyramidLevel[];
  /** Feature maps at `levels` as constants (off the tape). */
  features: FeatureExtractor;
}

/** Settings of one batch, from the stage config. */
export interface BatchSettings {
  iterations: number;
  latentSize: number;
  generatorChannels: number;
  generatorLearningRate: number;
  ftpLearningRate: number;
  acsLearningRate: number;
  warmupIterations: number;
  weights: InversionWeights;
  /** Roll by up to ± this many pixels, twice per iteration (before the FTP and after ACS). */
  jitter: number;
  flip: boolean;
  acsInit: { mean: number; std: number };
}

export interface IterationReport {
  /** 0-based iteration within the batch. */
  iteration: number;
  loss: number;
  /** Unweighted loss terms (crossEntropy, bnStatistics, tvL2, l2, ... those with a non-zero weight). */
  terms: Record<string, number>;
}

export interface BatchResult {
  /** The images of the iteration with the lowest loss, NHWC in [0, 1]. */
  images: Float32Array;
  bestLoss: number;
  /** Total loss of each iteration, in order. */
  losses: Float32Array;
}

/** A 32-bit seed for batch `index` of a stage seeded `seed`, so any batch can be remade alone (resume). */
export function batchSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * NaturalInversion on one batch: a fresh generator, FTP decoder and ACS α (all from `seed`), a fixed
 * latent per image, and `iterations` joint Adam steps (one optimiser per part, each with its own
 * learning rate and linear warm-up) on the DeepInversion loss of the final images against `targets`.
 * Per iteration: G(z, y) → jitter → FTP (with the teacher's feature maps of the jittered image, no
 * gradient) → ACS → jitter → teacher. Returns the images of the iteration with the lowest loss.
 */
export async function synthesizeBatch(
  teacher: PreparedTeacher,
  targets: Int32Array,
  seed: number,
  settings: BatchSettings,
  hooks: { signal: AbortSignal; onIteration(report: IterationReport): void; describe: string },
): Promise<BatchResult> {
  const n = targets.length;
  const channels = teacher.shape[2];
  const random = new SeededRandom(seed);
  const generator = new ConditionalGenerator(
    { latentSize: settings.latentSize, numClasses: teacher.numClasses, imageShape: teacher.shape, channels: settings.generatorChannels },
    random,
  );
  const ftp = new FeatureTransferPyramid(teacher.levels, teacher.shape, random);
  const alpha = tf.tidy(() => tf.variable(tf.tensor4d(initialAlpha(random, n, channels, settings.acsInit.mean, settings.acsInit.std), [n, 1, 1, channels]), true));
  const z = tf.tensor2d(Float32Array.from({ length: n * settings.latentSize }, () => random.gaussian()), [n, settings.latentSize]);
  const jitterRandom = new SeededRandom(random.deriveSeed());
  const labels = tf.tensor1d(targets, 'int32');
  const parts: Array<{ variables: tf.Variable[]; learningRate: number; optimizer?: ParamOptimizer }> = [
    { variables: generator.variables, learningRate: settings.generatorLearningRate },
    { variables: ftp.variables, learningRate: settings.ftpLearningRate },
    { variables: [alpha], learningRate: settings.acsLearningRate },
  ];
  for (const part of parts) part.optimizer = createOptimizer(part.variables.map((variable) => ({ variable, decay: false })), { kind: 'adam' });
  const allVariables = parts.flatMap((p) => p.variables);
  const flipProbability = settings.flip ? 0.5 : 0;
  const losses = new Float32Array(settings.iterations);
  let best: tf.Tensor4D | undefined;
  let bestLoss = Infinity;

  try {
    for (let i = 0; i < settings.iterations; i++) {
      throwIfAborted(hooks.signal);
      const before = randomJitter(jitterRandom, settings.jitter, flipProbability);
      const after = randomJitter(jitterRandom, settings.jitter, flipProbability);
      let pixels: tf.Tensor4D | undefined;
      let scalars: tf.Tensor1D | undefined;
      let names: string[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const raw = jitterAndFlip(generator.apply(z, labels), before.dy, before.dx, before.flip);
        const decoded = ftp.apply(raw, teacher.features(generatorPixels(raw)));
        pixels = tf.keep(channelScaledImage(decoded, alpha));
        const seen = jitterAndFlip(pixels, after.dy, after.dx, after.flip);
        const { total, terms } = inversionLoss({ images: seen, forward: teacher.forward(seen, { training: false }), targets: labels }, settings.weights);
        names = Object.keys(terms);
        scalars = tf.keep(tf.stack([total, ...names.map((name) => terms[name])]) as tf.Tensor1D);
        return total;
      }, allVariables);
      try {
        for (const part of parts) {
          const lr = learningRateAt(i, settings.iterations, { learningRate: part.learningRate, schedule: 'constant', warmupSteps: settings.warmupIterations });
          // A variable the loss does not reach (none today) gets a zero gradient.
          tf.tidy(() => part.optimizer!.step(part.variables.map((v) => grads[v.name] ?? tf.zerosLike(v)), lr));
        }
        const values = await scalars!.data();
        throwIfDeviceErrors();
        const loss = values[0];
        if (!Number.isFinite(loss)) {
          throw new PluginInputError(
            `natural-inversion: the loss became ${loss} at iteration ${i + 1} of ${hooks.describe}; lower generatorLearningRate, ` +
              'ftpLearningRate or acsLearningRate (or the loss weights)',
          );
        }
        losses[i] = loss;
        if (loss < bestLoss) {
          best?.dispose();
          best = pixels;
          bestLoss = loss;
          pixels = undefined;
        }
        hooks.onIteration({ iteration: i, loss, terms: Object.fromEntries(names.map((name, k) => [name, values[k + 1]])) });
      } finally {
        tf.dispose([value, scalars!, ...Object.values(grads)]);
        pixels?.dispose();
      }
      await yieldToEventLoop();
    }
    return { images: (await best!.data()) as Float32Array, bestLoss, losses };
  } finally {
    best?.dispose();
    for (const part of parts) part.optimizer?.dispose();
    generator.dispose();
    ftp.dispose();
    tf.dispose([alpha, z, labels]);
  }
}
