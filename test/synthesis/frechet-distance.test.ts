import { featureMoments, frechetDistance, type FeatureMoments } from '../../src/core/synthesis/frechet-distance';

function moments(mean: number[], covariance: number[][]): FeatureMoments {
  return { mean: Float64Array.from(mean), covariance: Float64Array.from(covariance.flat()), dim: mean.length, count: 100 };
}

describe('featureMoments', () => {
  it('gives the mean and the unbiased covariance of rows', () => {
    // rows (1, 2), (3, 2), (5, 8): mean (3, 4); centred (−2, −2), (0, −2), (2, 4)
    const m = featureMoments(Float32Array.from([1, 2, 3, 2, 5, 8]), 3, 2);
    expect(Array.from(m.mean)).toEqual([3, 4]);
    // var x = (4 + 0 + 4)/2 = 4; var y = (4 + 4 + 16)/2 = 12; cov = (4 + 0 + 8)/2 = 6
    expect(Array.from(m.covariance)).toEqual([4, 6, 6, 12]);
  });

  it('refuses fewer than two rows and mismatched sizes', () => {
    expect(() => featureMoments(Float32Array.from([1, 2]), 1, 2)).toThrow(/at least 2 rows/);
    expect(() => featureMoments(Float32Array.from([1, 2, 3]), 2, 2)).toThrow(/expected 2×2/);
  });
});

describe('frechetDistance', () => {
  it('is 0 between identical Gaussians', () => {
    const a = moments([1, -2, 0.5], [[2, 0.3, 0], [0.3, 1, 0.1], [0, 0.1, 0.5]]);
    expect(frechetDistance(a, a)).toBeCloseTo(0, 8);
  });

  it('is (μ₁ − μ₂)² + (σ₁ − σ₂)² in one dimension', () => {
    expect(frechetDistance(moments([1], [[4]]), moments([3], [[9]]))).toBeCloseTo(4 + 1, 10);
  });

  it('matches the closed form for 2×2 covariances that do not commute', () => {
    const s1 = [[2, 0.8], [0.8, 1]];
    const s2 = [[1, -0.5], [-0.5, 3]];
    // Σ₁Σ₂ has real positive eigenvalues; tr √(Σ₁Σ₂) = √(tr(Σ₁Σ₂) + 2√det(Σ₁Σ₂)) for 2×2.
    const p = [
      [s1[0][0] * s2[0][0] + s1[0][1] * s2[1][0], s1[0][0] * s2[0][1] + s1[0][1] * s2[1][1]],
      [s1[1][0] * s2[0][0] + s1[1][1] * s2[1][0], s1[1][0] * s2[0][1] + s1[1][1] * s2[1][1]],
    ];
    const trP = p[0][0] + p[1][1];
    const detP = p[0][0] * p[1][1] - p[0][1] * p[1][0];
    const traceSqrt = Math.sqrt(trP + 2 * Math.sqrt(detP));
    const expected = (0.5 - -1) ** 2 + (2 - 2) ** 2 + (2 + 1) + (1 + 3) - 2 * traceSqrt;
    expect(frechetDistance(moments([0.5, 2], s1), moments([-1, 2], s2))).toBeCloseTo(expected, 9);
  });

  it('for an affine copy y = 2x + 1 equals Σ(μ + 1)² + tr Σ', () => {
    const rows = Float32Array.from([0.1, 1.2, -0.7, 0.4, 2.2, -1.0, 0.3, 0.3, 1.1, -0.2, 0.9, 0.6, -1.4, 0.8, 0.05, 0.5, -0.3, 1.7]);
    const a = featureMoments(rows, 6, 3);
    const b = featureMoments(rows.map((v) => 2 * v + 1), 6, 3);
    let expected = 0;
    for (let d = 0; d < 3; d++) expected += (a.mean[d] + 1) ** 2 + a.covariance[d * 3 + d];
    expect(frechetDistance(a, b)).toBeCloseTo(expected, 4);
    expect(frechetDistance(b, a)).toBeCloseTo(expected, 4);
  });

  it('refuses feature sets of different dimensions', () => {
    expect(() => frechetDistance(moments([0], [[1]]), moments([0, 0], [[1, 0], [0, 1]]))).toThrow(/dimensions differ/);
  });
});
