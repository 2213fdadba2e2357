import * as tf from '@tensorflow/tfjs';
import { jsCompetitionLoss } from '../../src/core/synthesis/competition';
import { l2Prior, totalVariationL1, totalVariationL2 } from '../../src/core/synthesis/image-priors';
import { InversionLossError, inversionLoss, type InversionWeights } from '../../src/core/synthesis/inversion-loss';
import { bnStatisticsLoss, BnTapError, tapBatchNormInputs } from '../../src/core/tensors/bn-taps';
import { inputGradientForward } from '../../src/core/tensors/input-gradient';
import { crossEntropy } from '../../src/core/training/trainer';
import { SeededRandom } from '../../src/core/random';
import { analyticGradient, bnConvNet, numericGradient, relativeError, scalar } from './support';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const ln = Math.log;

describe('jsCompetitionLoss', () => {
  test('is 1 − JS of the softened distributions on a hand-computed pair', () => {
    // Student softmax [1/2, 1/2], teacher softmax [3/4, 1/4]: M = [5/8, 3/8]; no clamp is active.
    const klMP = 0.625 * ln(0.625 / 0.5) + 0.375 * ln(0.375 / 0.5);
    const klMQ = 0.625 * ln(0.625 / 0.75) + 0.375 * ln(0.375 / 0.25);
    const expected = 1 - 0.5 * (klMP + klMQ);
    const student = tf.tensor2d([[0, 0]]);
    expect(scalar(jsCompetitionLoss(tf.tensor2d([[ln(3), 0]]), student, 1))).toBeCloseTo(expected, 6);
    // T = 2 with twice the teacher logits gives the same distributions.
    expect(scalar(jsCompetitionLoss(tf.tensor2d([[2 * ln(3), 0]]), student, 2))).toBeCloseTo(expected, 6);
    // Averaged over the batch: a second, agreeing row adds JS = 0.
    const two = jsCompetitionLoss(tf.tensor2d([[ln(3), 0], [1, 1]]), tf.tensor2d([[0, 0], [1, 1]]), 1);
    expect(scalar(two)).toBeCloseTo(1 - (0.5 * (klMP + klMQ)) / 2, 6);
    student.dispose();
  });

  test('clamps probabilities to [0.01, 0.99] and JS to [0, 1]', () => {
    // Confident disagreement: P = [0.01, 0.99] and Q = [0.99, 0.01] after the clamp; JS = ½ln50 + ½ln(0.5/0.99) > 1.
    const js = 0.5 * ln(0.5 / 0.01) + 0.5 * ln(0.5 / 0.99);
    expect(js).toBeGreaterThan(1);
    expect(scalar(jsCompetitionLoss(tf.tensor2d([[100, 0]]), tf.tensor2d([[0, 100]]), 1))).toBeCloseTo(0, 6);
    // Agreement: JS = 0, loss 1.
    expect(scalar(jsCompetitionLoss(tf.tensor2d([[3, 1, 0]]), tf.tensor2d([[3, 1, 0]]), 3))).toBeCloseTo(1, 6);
    expect(() => jsCompetitionLoss(tf.tensor2d([[1, 0]]), tf.tensor2d([[1, 0, 0]]))).toThrow(RangeError);
  });

  test('gradients w.r.t. teacher and student logits match finite differences', () => {
    const random = new SeededRandom(3);
    const teacher = tf.tensor2d(Array.from({ length: 12 }, () => 2 * random.gaussian()), [3, 4]);
    const student = tf.tensor2d(Array.from({ length: 12 }, () => 2 * random.gaussian()), [3, 4]);
    const byTeacher = (t: tf.Tensor) => jsCompetitionLoss(t as tf.Tensor2D, student, 3);
    const byStudent = (s: tf.Tensor) => jsCompetitionLoss(teacher, s as tf.Tensor2D, 3);
    const gT = analyticGradient(byTeacher, teacher);
    const gS = analyticGradient(byStudent, student);
    expect(Math.max(...Array.from(gS).map(Math.abs))).toBeGreaterThan(1e-3);
    expect(relativeError(gT, numericGradient(byTeacher, teacher))).toBeLessThan(1e-2);
    expect(relativeError(gS, numericGradient(byStudent, student))).toBeLessThan(1e-2);
    tf.dispose([teacher, student]);
  });
});

describe('bnStatisticsLoss with per-layer weights', () => {
  const model = bnConvNet([6, 6, 2], 3, 11);
  const forward = tapBatchNormInputs(model);
  const random = new SeededRandom(4);
  const x = tf.tensor4d(Array.from({ length: 2 * 6 * 6 * 2 }, () => random.gaussian()), [2, 6, 6, 2]);

  test('weights the first layer by its multiplier and matches a direct computation', () => {
    const perLayer = tf.tidy(() =>
      forward(x).taps.map((tap) => {
        const { mean, variance } = tf.moments(tap.input, [0, 1, 2]);
        return tf.add(tf.norm(tf.sub(mean, tap.movingMean)), tf.norm(tf.sub(variance, tap.movingVariance))).dataSync()[0];
      }),
    );
    expect(perLayer).toHaveLength(2);
    const weighted = tf.tidy(() => bnStatisticsLoss(forward(x).taps, [10, 1]).dataSync()[0]);
    expect(weighted).toBeCloseTo(10 * perLayer[0] + perLayer[1], 3);
    const plain = tf.tidy(() => bnStatisticsLoss(forward(x).taps).dataSync()[0]);
    expect(plain).toBeCloseTo(perLayer[0] + perLayer[1], 4);
    expect(() => tf.tidy(() => bnStatisticsLoss(forward(x).taps, [1]))).toThrow(BnTapError);
  });

  test('its input gradient with a first-layer multiplier matches finite differences', () => {
    const small = tf.tidy(() => tf.slice(x, [0, 0, 0, 0], [2, 4, 4, 2]));
    const m = bnConvNet([4, 4, 2], 3, 12);
    const f = (t: tf.Tensor) => bnStatisticsLoss(inputGradientForward(m)(t).taps, [10, 1]);
    expect(relativeError(analyticGradient(f, small), numericGradient(f, small))).toBeLessThan(1e-2);
    tf.dispose(small);
    m.dispose();
  });
});

describe('inversionLoss', () => {
  const model = bnConvNet([6, 6, 1], 3, 21);
  const student = bnConvNet([6, 6, 1], 3, 31);
  const random = new SeededRandom(8);
  const images = tf.tensor4d(Array.from({ length: 3 * 36 }, () => random.next()), [3, 6, 6, 1]);
  const targets = tf.tensor1d([0, 1, 2], 'int32');
  const weights: InversionWeights = { crossEntropy: 1, bnStatistics: 10, firstBnMultiplier: 2, tvL2: 0.5, tvL1: 0.25, l2: 0.125, competition: 0.2, competitionTemperature: 3 };

  test('is the weighted sum of its terms, each equal to its own function', () => {
    const got = tf.tidy(() => {
      const forward = inputGradientForward(model)(images);
      const studentLogits = student.apply(images) as tf.Tensor2D;
      const { total, terms } = inversionLoss({ images, forward, targets, studentLogits }, weights);
      const value = (t: tf.Tensor) => t.dataSync()[0];
      const expected = {
        crossEntropy: value(crossEntropy(forward.logits as tf.Tensor2D, targets)),
        bnStatistics: value(bnStatisticsLoss(forward.taps, [2, 1])),
        tvL2: value(totalVariationL2(images)),
        tvL1: value(totalVariationL1(images)),
        l2: value(l2Prior(images)),
        competition: value(jsCompetitionLoss(forward.logits as tf.Tensor2D, studentLogits, 3)),
      };
      return { total: value(total), terms: Object.fromEntries(Object.entries(terms).map(([k, v]) => [k, value(v)])), expected };
    });
    expect(Object.keys(got.terms).sort()).toEqual(Object.keys(got.expected).sort());
    for (const [k, v] of Object.entries(got.expected)) expect(got.terms[k]).toBeCloseTo(v, 5);
    const e = got.expected;
    expect(got.total).toBeCloseTo(e.crossEntropy + 10 * e.bnStatistics + 0.5 * e.tvL2 + 0.25 * e.tvL1 + 0.125 * e.l2 + 0.2 * e.competition, 4);
  });

  test('skips zero-weight terms and refuses a BN term without BatchNorm layers', () => {
    const terms = tf.tidy(() => {
      const forward = inputGradientForward(model)(images);
      const { terms } = inversionLoss({ images, forward, targets }, { ...weights, tvL1: 0, l2: 0, bnStatistics: 0 });
      return Object.keys(terms).sort();
    });
    // No student: no competition term either.
    expect(terms).toEqual(['crossEntropy', 'tvL2']);
    expect(() => tf.tidy(() => inversionLoss({ images, forward: { logits: tf.zeros([3, 3]), taps: [] }, targets }, weights).total)).toThrow(InversionLossError);
    const zero = { ...weights, crossEntropy: 0, bnStatistics: 0, tvL2: 0, tvL1: 0, l2: 0, competition: 0 };
    expect(() => tf.tidy(() => inversionLoss({ images, forward: inputGradientForward(model)(images), targets }, zero).total)).toThrow(/nothing to optimise/);
  });

  test('leaves no tensors behind inside tidy', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const forward = inputGradientForward(model)(images);
      return inversionLoss({ images, forward, targets, studentLogits: student.apply(images) as tf.Tensor2D }, weights).total;
    }).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
