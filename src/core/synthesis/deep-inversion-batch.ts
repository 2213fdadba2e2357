import * as tf from '@tensorflow/tfjs';
import { throwIfDeviceErrors } from '../tensors/backend';
import { SeededRandom } from '../random';
import { inputGradientForward } from '../tensors/input-gradient';
import { createOptimizer } from '../training/optimizers';
import { learningRateAt } from '../training/trainer';
import { jitterAndFlip, randomJitter } from './image-priors';
import { inversionLoss, type InversionWeights } from './inversion-loss';

/** Settings of one DeepInversion batch: plain data, so they can travel to a worker. */
export interface DeepInversionBatchSettings {
  /** Adam steps on the pixels. */
  iterations: number;
  /** Peak Adam learning rate on the pixels. */
  learningRate: number;
  beta1: number;
  beta2: number;
  /** Linear warm-up iterations before the cosine decay (the reference's ImageNet code: 100 of 2000). */
  warmupIterations: number;
  /** 'cosine' (default; lr_cosine_policy of the reference) or 'constant'. */
  schedule?: 'cosine' | 'constant';
  /** Largest circular shift in pixels, per axis, drawn each iteration (the reference: 2 for 32×32). */
  jitter: number;
  /** Probability of a horizontal flip each iteration (the reference: 0 on CIFAR, 0.5 with --do_flip). */
  flipProbability: number;
  weights: InversionWeights;
  /**
   * The pixels start as a seeded Gaussian N(mean, std²) in pixel space, clipped to [0, 1] when `clip`.
   * Default mean 0.5, std 0.2: the reference's randn lives in normalised space, where one unit is one
   * dataset standard deviation (about 0.2–0.3 of the [0, 1] range); our teachers take [0, 1] pixels.
   */
  init?: { mean: number; std: number };
  /** Clip the pixels to [0, 1] after every step (default true; the reference's ImageNet settings 0/1). */
  clip?: boolean;
}

export interface IterationReport {
  /** 0-based iteration within the batch. */
  iteration: number;
  /** Total loss at the start of the iteration (on the jittered batch the teacher saw). */
  loss: number;
  /** Unweighted terms that entered the loss. */
  terms: Record<string, number>;
  learningRate: number;
}

export interface DeepInversionBatchInput {
  /** The teacher, in inference mode; only the pixels are optimised (no weight gradients are computed). */
  teacher: tf.LayersModel;
  /** Class each image is made for. */
  targets: Int32Array;
  /** Seeds the initial pixels and the jitter/flip draws. */
  seed: number;
  /** ADI: the current student, for the competition term (inference mode, not updated here). */
  student?: tf.LayersModel;
  /** Called after every iteration (progress, cancellation: throw to stop; the batch's tensors are freed). */
  onIteration?: (report: IterationReport) => void | Promise<void>;
}

export interface DeepInversionBatchResult {
  /** The pixels of the iteration with the lowest total loss (a copy taken then), NHWC in [0, 1] when clipped. */
  images: Float32Array;
  shape: [number, number, number, number];
  bestLoss: number;
  /** 0-based iteration of the best loss. */
  bestIteration: number;
  /** The terms at the best iteration. */
  bestTerms: Record<string, number>;
  /** Total loss at the start of every iteration. */
  losses: Float32Array;
}

/** Settings or inputs a batch cannot use, or a loss that diverged. */
export class DeepInversionBatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeepInversionBatchError';
  }
}

/** The teacher's image shape [h, w, c] and class count, or a DeepInversionBatchError. */
export function teacherGeometry(teacher: tf.LayersModel): { shape: [number, number, number]; numClasses: number } {
  const input = teacher.inputs[0]?.shape.slice(1);
  const classes = teacher.outputs[0]?.shape;
  if (input === undefined || input.length !== 3 || input.some((d) => d == null) || classes?.length !== 2 || classes[1] == null) {
    throw new DeepInversionBatchError(`teacher ${teacher.name} must map images [batch, h, w, c] to logits [batch, classes]`);
  }
  return { shape: input as [number, number, number], numClasses: classes[1] };
}

function checkSettings(s: DeepInversionBatchSettings, targets: Int32Array, numClasses: number): void {
  const fail = (m: string) => {
    throw new DeepInversionBatchError(m);
  };
  if (!(Number.isInteger(s.iterations) && s.iterations > 0)) fail(`iterations must be a positive integer; got ${s.iterations}`);
  if (!(Number.isFinite(s.learningRate) && s.learningRate > 0)) fail(`learningRate must be a positive number; got ${s.learningRate}`);
  if (!(s.beta1 >= 0 && s.beta1 < 1 && s.beta2 >= 0 && s.beta2 < 1)) fail(`Adam betas must be in [0, 1); got ${s.beta1}, ${s.beta2}`);
  if (!(Number.isInteger(s.warmupIterations) && s.warmupIterations >= 0)) fail(`warmupIterations must be a non-negative integer; got ${s.warmupIterations}`);
  if (!(Number.isInteger(s.jitter) && s.jitter >= 0)) fail(`jitter must be a non-negative integer; got ${s.jitter}`);
  if (!(s.flipProbability >= 0 && s.flipProbability <= 1)) fail(`flipProbability must be in [0, 1]; got ${s.flipProbability}`);
  for (const [name, w] of Object.entries(s.weights)) if (!(Number.isFinite(w) && w >= 0)) fail(`weight ${name} must be a number ≥ 0; got ${w}`);
  if (!(s.weights.competitionTemperature > 0)) fail(`competitionTemperature must be > 0; got ${s.weights.competitionTemperature}`);
  if (s.init !== undefined && !(Number.isFinite(s.init.mean) && s.init.std > 0)) fail(`init must have a finite mean and std > 0; got ${JSON.stringify(s.init)}`);
  if (targets.length === 0) fail('a synthesis batch needs at least one target class');
  for (const t of targets) if (!(Number.isInteger(t) && t >= 0 && t < numClasses)) fail(`target class ${t} is outside 0..${numClasses - 1}`);
}

/** Seed of the jitter stream, apart from the tf seed of the initial pixels. */
function jitterSeed(seed: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ 0x5bd1e995) >>> 0;
}

/**
 * DeepInversion's optimisation of one batch. The pixels are one tf.variable, initialised from a
 * seeded Gaussian (see `init`), and follow Adam (given betas) at `learningRateAt` (cosine with
 * warm-up). Each iteration draws a seeded jitter (circular shift ±jitter) and flip, runs the jittered
 * batch through the teacher's input-gradient forward (inference mode, no filter gradients) and, for
 * ADI, the student's, and steps on the gradient of `inversionLoss` w.r.t. the pixels only; the pixels
 * are clipped to [0, 1] after each step. The batch with the lowest loss is kept as a copy (the
 * reference CIFAR code's `best_inputs = inputs.data` aliases the live tensor and returns the last
 * iterate). Deterministic for a given teacher, student, targets, seed and backend.
 */
export async function deepInversionBatch(input: DeepInversionBatchInput, settings: DeepInversionBatchSettings): Promise<DeepInversionBatchResult> {
  const { shape: imageShape, numClasses } = teacherGeometry(input.teacher);
  checkSettings(settings, input.targets, numClasses);
  const shape = [input.targets.length, ...imageShape] as [number, number, number, number];
  const clip = settings.clip ?? true;
  const init = settings.init ?? { mean: 0.5, std: 0.2 };
  const teacherForward = inputGradientForward(input.teacher);
  const studentForward = input.student !== undefined && settings.weights.competition > 0 ? inputGradientForward(input.student) : undefined;
  const random = new SeededRandom(jitterSeed(input.seed));
  const schedule = { learningRate: settings.learningRate, warmupSteps: settings.warmupIterations, schedule: settings.schedule ?? 'cosine' };

  const labels = tf.tensor1d(input.targets, 'int32');
  const pixels = tf.tidy(() => {
    const noise = tf.randomNormal(shape, init.mean, init.std, 'float32', input.seed);
    return tf.variable(clip ? tf.clipByValue(noise, 0, 1) : noise, true) as tf.Variable<tf.Rank.R4>;
  });
  const optimizer = createOptimizer([{ variable: pixels, decay: false }], { kind: 'adam', beta1: settings.beta1, beta2: settings.beta2 });
  const losses = new Float32Array(settings.iterations);
  let best: tf.Tensor | undefined;
  let bestLoss = Infinity;
  let bestIteration = -1;
  let bestTerms: Record<string, number> = {};
  try {
    for (let i = 0; i < settings.iterations; i++) {
      const jitter = randomJitter(random, settings.jitter, settings.flipProbability);
      let termNames: string[] = [];
      let readings: tf.Tensor | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const seen = jitterAndFlip(pixels, jitter.dy, jitter.dx, jitter.flip);
        const forward = teacherForward(seen, { training: false });
        const studentLogits = studentForward?.(seen, { training: false }).logits as tf.Tensor2D | undefined;
        const { total, terms } = inversionLoss({ images: seen, forward, targets: labels, studentLogits }, settings.weights);
        termNames = Object.keys(terms);
        readings = tf.keep(tf.stack([total, ...termNames.map((k) => terms[k])]));
        return total;
      }, [pixels]);
      const lr = learningRateAt(i, settings.iterations, schedule);
      let values: Float32Array;
      try {
        values = (await readings!.data()) as Float32Array;
        throwIfDeviceErrors();
        const loss = values[0];
        losses[i] = loss;
        if (!Number.isFinite(loss)) {
          throw new DeepInversionBatchError(
            `the synthesis loss became ${loss} at iteration ${i + 1}; lower learningRate or the prior weights (tvL2, l2, bnStatistics)`,
          );
        }
        if (loss < bestLoss) {
          // The pixels before this step are the ones that scored `loss`: copy them now.
          best?.dispose();
          best = tf.clone(pixels);
          bestLoss = loss;
          bestIteration = i;
          bestTerms = Object.fromEntries(termNames.map((k, j) => [k, values[j + 1]]));
        }
        optimizer.step([grads[pixels.name]], lr);
        if (clip) tf.tidy(() => pixels.assign(tf.clipByValue(pixels, 0, 1)));
      } finally {
        tf.dispose([value, readings!, ...Object.values(grads)]);
      }
      await input.onIteration?.({ iteration: i, loss: losses[i], terms: Object.fromEntries(termNames.map((k, j) => [k, values[j + 1]])), learningRate: lr });
    }
    return { images: (await best!.data()) as Float32Array, shape, bestLoss, bestIteration, bestTerms, losses };
  } finally {
    optimizer.dispose();
    tf.dispose([pixels, labels]);
    best?.dispose();
  }
}
