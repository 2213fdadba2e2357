import * as tf from '@tensorflow/tfjs';
import { jitterAndFlip, l2Norm, l2Prior, randomJitter, totalVariationL1, totalVariationL2 } from '../../src/core/synthesis/image-priors';
import { classBalancedTargets } from '../../src/core/synthesis/targets';
import { SeededRandom } from '../../src/core/random';
import { analyticGradient, numericGradient, relativeError, scalar } from './support';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// One 2×2 grey image [[a, b], [c, d]] = [[0, 1], [2, 4]].
const square = () => tf.tensor4d([0, 1, 2, 4], [1, 2, 2, 1]);

describe('total variation and l2 priors on hand-computed inputs', () => {
  test('TV-L2 sums the norms of the horizontal, vertical and two diagonal differences', () => {
    // horizontal (a−b, c−d) = (−1, −2); vertical (a−c, b−d) = (−2, −3); c−b = 1; a−d = −4.
    expect(scalar(totalVariationL2(square()))).toBeCloseTo(Math.sqrt(5) + Math.sqrt(13) + 1 + 4, 5);
  });

  test('TV-L2 takes each norm over the whole batch, not per image', () => {
    const two = tf.tensor4d([0, 1, 2, 4, 0, 2, 4, 8], [2, 2, 2, 1]);
    // The second image is twice the first: each difference norm is sqrt(1 + 4) times the first's.
    expect(scalar(totalVariationL2(two))).toBeCloseTo(Math.sqrt(5) * (Math.sqrt(5) + Math.sqrt(13) + 1 + 4), 4);
    two.dispose();
  });

  test('TV-L1 sums the mean absolute value of the four differences', () => {
    expect(scalar(totalVariationL1(square()))).toBeCloseTo(1.5 + 2.5 + 1 + 4, 5);
  });

  test('the l2 prior is the mean over images of each image norm', () => {
    const x = tf.tensor4d([0, 1, 2, 4, 3, 4, 0, 0], [2, 2, 2, 1]);
    expect(scalar(l2Prior(x))).toBeCloseTo((Math.sqrt(21) + 5) / 2, 5);
    x.dispose();
  });

  test('a flat image has zero variation and a zero (not NaN) gradient', () => {
    const flat = tf.fill([1, 3, 3, 2], 0.5) as tf.Tensor4D;
    expect(scalar(totalVariationL2(flat))).toBe(0);
    const g = analyticGradient((x) => totalVariationL2(x as tf.Tensor4D), flat);
    expect(Array.from(g).every((v) => v === 0)).toBe(true);
    const zeros = tf.zeros([2, 2, 2, 1]);
    expect(Array.from(analyticGradient((x) => l2Norm(x) as tf.Scalar, zeros)).every((v) => v === 0)).toBe(true);
    tf.dispose([flat, zeros]);
  });
});

describe('prior gradients match finite differences', () => {
  const random = new SeededRandom(5);
  const x = () => tf.tensor4d(Array.from({ length: 2 * 3 * 4 * 2 }, () => random.gaussian()), [2, 3, 4, 2]);
  test.each([
    ['TV-L2', (t: tf.Tensor) => totalVariationL2(t as tf.Tensor4D)],
    ['TV-L1', (t: tf.Tensor) => totalVariationL1(t as tf.Tensor4D)],
    ['l2 prior', (t: tf.Tensor) => l2Prior(t as tf.Tensor4D)],
  ])('%s', (_name, f) => {
    const input = x();
    // TV-L1 is piecewise linear: the step must not cross a kink (differences of Gaussians are far apart at 1e-3).
    const numeric = numericGradient(f, input, 1e-3);
    const analytic = analyticGradient(f, input);
    expect(relativeError(analytic, numeric)).toBeLessThan(1e-2);
    input.dispose();
  });
});

describe('jitterAndFlip', () => {
  const grid = () => tf.tensor4d(Array.from({ length: 12 }, (_, i) => i), [1, 3, 4, 1]);
  test('rolls rows and columns as torch.roll, then flips horizontally', () => {
    const x = grid();
    const rolled = jitterAndFlip(x, 1, -1, false);
    expect(Array.from(rolled.dataSync())).toEqual([9, 10, 11, 8, 1, 2, 3, 0, 5, 6, 7, 4]);
    const flipped = jitterAndFlip(x, 1, -1, true);
    expect(Array.from(flipped.dataSync())).toEqual([8, 11, 10, 9, 0, 3, 2, 1, 4, 7, 6, 5]);
    // Shifts wrap: a roll by the full height and width is the identity; the result is a distinct tensor.
    const same = jitterAndFlip(x, 3, -4, false);
    expect(Array.from(same.dataSync())).toEqual(Array.from({ length: 12 }, (_, i) => i));
    same.dispose();
    expect(x.isDisposed).toBe(false);
    tf.dispose([x, rolled, flipped]);
  });

  test('the gradient maps back through the roll and flip', () => {
    const x = grid();
    const weights = tf.tensor4d(Array.from({ length: 12 }, (_, i) => i * i), [1, 3, 4, 1]);
    const f = (t: tf.Tensor) => tf.sum(tf.mul(jitterAndFlip(t as tf.Tensor4D, 2, 1, true), weights)) as tf.Scalar;
    const analytic = analyticGradient(f, x);
    // d/dx_k Σ w_j · out_j = w at the position x_k moved to.
    const moved = jitterAndFlip(weights, -2, 0, false);
    const back = tf.tidy(() => jitterAndFlip(tf.reverse(moved, 2) as tf.Tensor4D, 0, -1, false));
    expect(Array.from(analytic)).toEqual(Array.from(back.dataSync()));
    tf.dispose([x, weights, moved, back]);
  });

  test('randomJitter draws seeded shifts within ±maxShift and flips at the given rate', () => {
    const a = new SeededRandom(9);
    const b = new SeededRandom(9);
    const draws = Array.from({ length: 2000 }, () => randomJitter(a, 2, 0.25));
    expect(draws.slice(0, 50)).toEqual(Array.from({ length: 50 }, () => randomJitter(b, 2, 0.25)));
    const shifts = new Set(draws.flatMap((d) => [d.dy, d.dx]));
    expect([...shifts].sort()).toEqual([-1, -2, 0, 1, 2].sort());
    const flips = draws.filter((d) => d.flip).length / draws.length;
    expect(flips).toBeGreaterThan(0.2);
    expect(flips).toBeLessThan(0.3);
    expect(Array.from({ length: 20 }, () => randomJitter(a, 0, 0)).every((d) => d.dy === 0 && d.dx === 0 && !d.flip)).toBe(true);
    expect(() => randomJitter(a, -1, 0)).toThrow(RangeError);
  });
});

describe('classBalancedTargets', () => {
  test('37 images of 10 classes over batches of 16, 16 and 5 are balanced within one image', () => {
    const batches = [classBalancedTargets(0, 16, 10), classBalancedTargets(16, 16, 10), classBalancedTargets(32, 5, 10)];
    expect(Array.from(batches[2])).toEqual([2, 3, 4, 5, 6]);
    const counts = new Array(10).fill(0);
    for (const t of batches.flatMap((b) => Array.from(b))) counts[t]++;
    // 37 = 3·10 + 7: classes 0..6 get 4 images, 7..9 get 3.
    expect(counts).toEqual([4, 4, 4, 4, 4, 4, 4, 3, 3, 3]);
    for (const batch of batches) {
      const c = new Array(10).fill(0);
      for (const t of batch) c[t]++;
      expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(1);
    }
    expect(() => classBalancedTargets(0, 3, 0)).toThrow(RangeError);
  });
});
