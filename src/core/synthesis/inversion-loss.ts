import * as tf from '@tensorflow/tfjs';
import { bnStatisticsLoss, type TappedForward } from '../tensors/bn-taps';
import { crossEntropy } from '../training/trainer';
import { jsCompetitionLoss } from './competition';
import { l2Prior, totalVariationL1, totalVariationL2 } from './image-priors';

/**
 * Weights of DeepInversion's loss terms (the reference's ImageNet names in brackets):
 *   crossEntropy [main_loss_multiplier] · CE(teacher(x̂), targets)
 * + bnStatistics [r_feature]           · Σ_l w_l (‖μ_l − μ_l^run‖ + ‖σ²_l − σ²_l^run‖), w_1 = firstBnMultiplier, others 1
 * + tvL2 [tv_l2 / var_scale]           · TV-L2(x̂)
 * + tvL1 [tv_l1]                        · TV-L1(x̂)
 * + l2 [l2]                             · mean_i ‖x̂_i‖
 * + competition [adi_scale]            · (1 − JS(student(x̂), teacher(x̂)))   with temperature competitionTemperature
 * where x̂ is the jittered batch the teacher saw.
 */
export interface InversionWeights {
  crossEntropy: number;
  bnStatistics: number;
  firstBnMultiplier: number;
  tvL2: number;
  tvL1: number;
  l2: number;
  competition: number;
  competitionTemperature: number;
}

export interface InversionLossInput {
  /** The jittered batch the teacher saw (NHWC). */
  images: tf.Tensor4D;
  /** The teacher's forward on `images`: logits and BN inputs. */
  forward: TappedForward;
  /** Class each image is made for, int32 [batch]. */
  targets: tf.Tensor1D;
  /** The ADI student's logits on `images`; the competition term needs them. */
  studentLogits?: tf.Tensor2D;
}

export interface InversionLoss {
  total: tf.Scalar;
  /** Each unweighted term that entered the total (weight ≠ 0): crossEntropy, bnStatistics, tvL2, tvL1, l2, competition. */
  terms: Record<string, tf.Scalar>;
}

/** A weight set or input the loss cannot use. */
export class InversionLossError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InversionLossError';
  }
}

/**
 * The inversion loss of one batch. Terms whose weight is 0 are not computed. Returns the weighted
 * total and the unweighted terms; the caller owns all of them (call inside tf.tidy or a gradient
 * function). The competition term is used when its weight is non-zero and student logits are given.
 */
export function inversionLoss(input: InversionLossInput, w: InversionWeights): InversionLoss {
  const terms: Record<string, tf.Scalar> = {};
  const weighted: tf.Scalar[] = [];
  const add = (name: string, weight: number, term: () => tf.Scalar) => {
    if (weight === 0) return;
    const value = term();
    terms[name] = value;
    weighted.push(weight === 1 ? value : (tf.mul(value, weight) as tf.Scalar));
  };
  add('crossEntropy', w.crossEntropy, () => crossEntropy(input.forward.logits as tf.Tensor2D, input.targets));
  add('bnStatistics', w.bnStatistics, () => {
    const taps = input.forward.taps;
    if (taps.length === 0) throw new InversionLossError('the BatchNorm-statistics term needs a teacher with BatchNorm layers; set its weight to 0');
    return bnStatisticsLoss(taps, taps.map((_, i) => (i === 0 ? w.firstBnMultiplier : 1)));
  });
  add('tvL2', w.tvL2, () => totalVariationL2(input.images));
  add('tvL1', w.tvL1, () => totalVariationL1(input.images));
  add('l2', w.l2, () => l2Prior(input.images));
  if (input.studentLogits !== undefined) {
    const student = input.studentLogits;
    add('competition', w.competition, () => jsCompetitionLoss(input.forward.logits as tf.Tensor2D, student, w.competitionTemperature));
  }
  if (weighted.length === 0) throw new InversionLossError('every inversion loss weight is 0; nothing to optimise');
  return { total: (weighted.length === 1 ? weighted[0] : tf.addN(weighted)) as tf.Scalar, terms };
}
