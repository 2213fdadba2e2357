import type * as tf from '@tensorflow/tfjs';
import { deepInversionBatch, DeepInversionBatchError, type DeepInversionBatchSettings } from '../synthesis/deep-inversion-batch';
import type { InversionWeights } from '../synthesis/inversion-loss';

/**
 * Settings of one DeepInversion batch run as a worker job: plain data, so it can travel to a worker.
 * The required fields are the early loop's (CE + bnWeight · BN statistics, constant learning rate,
 * N(0, 1) start, no jitter, no clipping); the optional ones switch on the full method of
 * `deepInversionBatch` (priors, jitter/flip, cosine schedule, pixel-space start with clipping).
 */
export interface InversionBatchConfig {
  /** Input-gradient steps on the batch. */
  iterations: number;
  /** Adam learning rate on the pixels (the peak, under a cosine schedule). */
  learningRate: number;
  /** Weight of the BatchNorm-statistics loss next to the cross-entropy to the targets. */
  bnWeight: number;
  /** Adam moment decay rates; default 0.9 and 0.999 (as DeepInversion's reference code). */
  beta1?: number;
  beta2?: number;
  /** The other loss weights (tvL2, l2, firstBnMultiplier...); default 0 (firstBnMultiplier 1, crossEntropy 1). */
  weights?: Partial<Omit<InversionWeights, 'bnStatistics' | 'competition'>>;
  /** Default 'constant'. */
  schedule?: 'cosine' | 'constant';
  warmupIterations?: number;
  /** Largest circular shift per iteration, pixels; default 0. */
  jitter?: number;
  /** Default 0. */
  flipProbability?: number;
  /** Start N(mean, std²); default N(0, 1) as the reference's randn. */
  init?: { mean: number; std: number };
  /** Clip the pixels to [0, 1] after each step; default false. */
  clip?: boolean;
}

export interface InversionBatchResult {
  /** The synthesized images (the best iterate), [count, ...shape] flattened (NHWC). */
  images: Float32Array;
  shape: [number, number, number, number];
  /** Total loss at the start of each iteration. */
  losses: Float32Array;
  bestLoss: number;
}

/** A synthesis batch whose settings or targets cannot be used. */
export class InversionJobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InversionJobError';
  }
}

/** The full batch settings a job config stands for. */
export function inversionBatchSettings(config: InversionBatchConfig): DeepInversionBatchSettings {
  return {
    iterations: config.iterations,
    learningRate: config.learningRate,
    beta1: config.beta1 ?? 0.9,
    beta2: config.beta2 ?? 0.999,
    warmupIterations: config.warmupIterations ?? 0,
    schedule: config.schedule ?? 'constant',
    jitter: config.jitter ?? 0,
    flipProbability: config.flipProbability ?? 0,
    weights: {
      crossEntropy: 1,
      firstBnMultiplier: 1,
      tvL2: 0,
      tvL1: 0,
      l2: 0,
      competitionTemperature: 3,
      ...config.weights,
      bnStatistics: config.bnWeight,
      competition: 0,
    },
    init: config.init ?? { mean: 0, std: 1 },
    clip: config.clip ?? false,
  };
}

/**
 * One DeepInversion batch for the worker pool (job 'deep-inversion.batch'): `deepInversionBatch` with
 * the settings of `inversionBatchSettings(config)`. ADI is not offered here: its student changes
 * between batches. Deterministic for a given teacher, targets, seed and backend.
 */
export async function invertBatch(teacher: tf.LayersModel, targets: Int32Array, seed: number, config: InversionBatchConfig): Promise<InversionBatchResult> {
  try {
    const result = await deepInversionBatch({ teacher, targets, seed }, inversionBatchSettings(config));
    return { images: result.images, shape: result.shape, losses: result.losses, bestLoss: result.bestLoss };
  } catch (err) {
    if (err instanceof DeepInversionBatchError) throw new InversionJobError(err.message);
    throw err;
  }
}
