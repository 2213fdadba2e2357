import { EigenvalueDecomposition, Matrix } from 'ml-matrix';

/** Mean and covariance of feature rows. */
export interface FeatureMoments {
  mean: Float64Array;
  /** Unbiased sample covariance (n − 1), row-major dim×dim. */
  covariance: Float64Array;
  dim: number;
  count: number;
}

/** Mean and sample covariance of `count` rows of `dim` features (row-major float32). */
export function featureMoments(rows: Float32Array, count: number, dim: number): FeatureMoments {
  if (count < 2) throw new RangeError(`feature moments need at least 2 rows; got ${count}`);
  if (rows.length !== count * dim) throw new RangeError(`expected ${count}×${dim} features; got ${rows.length} values`);
  const mean = new Float64Array(dim);
  for (let i = 0; i < count; i++) for (let d = 0; d < dim; d++) mean[d] += rows[i * dim + d];
  for (let d = 0; d < dim; d++) mean[d] /= count;
  const covariance = new Float64Array(dim * dim);
  const centred = new Float64Array(dim);
  for (let i = 0; i < count; i++) {
    for (let d = 0; d < dim; d++) centred[d] = rows[i * dim + d] - mean[d];
    for (let a = 0; a < dim; a++) {
      const ca = centred[a];
      if (ca === 0) continue;
      for (let b = a; b < dim; b++) covariance[a * dim + b] += ca * centred[b];
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = covariance[a * dim + b] / (count - 1);
      covariance[a * dim + b] = v;
      covariance[b * dim + a] = v;
    }
  }
  return { mean, covariance, dim, count };
}

function symmetricMatrix(values: Float64Array, dim: number): Matrix {
  const m = new Matrix(dim, dim);
  for (let a = 0; a < dim; a++) for (let b = 0; b < dim; b++) m.set(a, b, values[a * dim + b]);
  return m;
}

/** Eigen-decomposition of a symmetric matrix with negative round-off eigenvalues set to 0. */
function symmetricEigen(m: Matrix): { values: number[]; vectors: Matrix } {
  const e = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  return { values: e.realEigenvalues.map((v) => Math.max(v, 0)), vectors: e.eigenvectorMatrix };
}

/**
 * Fréchet distance between two Gaussians fitted to feature sets (the FID formula):
 * ‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2·tr((Σ₁Σ₂)^½). The trace of the square root is computed as
 * Σ √λᵢ of the symmetric PSD matrix Σ₁^½ Σ₂ Σ₁^½ (same eigenvalues as Σ₁Σ₂), so no complex
 * round-off arises. 0 for identical moments; larger is further apart.
 */
export function frechetDistance(a: FeatureMoments, b: FeatureMoments): number {
  if (a.dim !== b.dim) throw new RangeError(`feature dimensions differ: ${a.dim} and ${b.dim}`);
  const dim = a.dim;
  let meanTerm = 0;
  let traces = 0;
  for (let d = 0; d < dim; d++) {
    meanTerm += (a.mean[d] - b.mean[d]) ** 2;
    traces += a.covariance[d * dim + d] + b.covariance[d * dim + d];
  }
  const first = symmetricEigen(symmetricMatrix(a.covariance, dim));
  const sqrtFirst = first.vectors.mmul(Matrix.diag(first.values.map(Math.sqrt))).mmul(first.vectors.transpose());
  const inner = sqrtFirst.mmul(symmetricMatrix(b.covariance, dim)).mmul(sqrtFirst);
  // Symmetrise against round-off before the symmetric solver.
  const symmetric = inner.add(inner.transpose()).mul(0.5);
  const traceSqrt = symmetricEigen(symmetric).values.reduce((sum, v) => sum + Math.sqrt(v), 0);
  return Math.max(meanTerm + traces - 2 * traceSqrt, 0);
}
