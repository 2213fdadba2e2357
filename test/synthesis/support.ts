import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../../src/core/data/image-set';
import { SeededRandom } from '../../src/core/random';
import { trainClassifier } from '../../src/core/training/trainer';

/** A tiny conv classifier with two BatchNorm layers and seeded, non-default BN statistics. */
export function bnConvNet(inputShape: [number, number, number], numClasses: number, seed: number): tf.LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape, filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: tf.initializers.heNormal({ seed }) }));
  model.add(tf.layers.batchNormalization({ name: `bn_a_${seed}`, momentum: 0.9 }));
  model.add(tf.layers.activation({ activation: 'relu' }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', kernelInitializer: tf.initializers.heNormal({ seed: seed + 1 }) }));
  model.add(tf.layers.batchNormalization({ name: `bn_b_${seed}`, momentum: 0.9 }));
  model.add(tf.layers.activation({ activation: 'relu' }));
  model.add(tf.layers.globalAveragePooling2d({}));
  model.add(tf.layers.dense({ units: numClasses, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }) }));
  const random = new SeededRandom(seed + 3);
  for (const layer of model.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
    // getWeights() returns the layer's own variables: read the size, never dispose them.
    const n = layer.getWeights()[2].shape[0];
    const fresh = [
      tf.tensor1d(Array.from({ length: n }, () => 0.8 + 0.4 * random.next())),
      tf.tensor1d(Array.from({ length: n }, () => 0.2 * random.gaussian())),
      tf.tensor1d(Array.from({ length: n }, () => 0.3 * random.gaussian())),
      tf.tensor1d(Array.from({ length: n }, () => 0.5 + random.next())),
    ];
    layer.setWeights(fresh);
    tf.dispose(fresh);
  }
  return model;
}

/** Central finite differences of a scalar function of `x` (float32: keep `x` small and eps ~1e-2). */
export function numericGradient(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, eps = 1e-2): Float32Array {
  const base = x.dataSync() as Float32Array;
  const grad = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const at = (delta: number) =>
      tf.tidy(() => {
        const moved = Float32Array.from(base);
        moved[i] += delta;
        return f(tf.tensor(moved, x.shape)).dataSync()[0];
      });
    grad[i] = (at(eps) - at(-eps)) / (2 * eps);
  }
  return grad;
}

/** ‖a − b‖ / max(‖b‖, tiny). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < b.length; i++) {
    diff += (a[i] - b[i]) ** 2;
    norm += b[i] ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-12);
}

/** The analytic gradient of `f` at `x`. */
export function analyticGradient(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor): Float32Array {
  return tf.tidy(() => tf.grad(f)(x).dataSync() as Float32Array);
}

/** Reads a scalar and disposes it. */
export function scalar(t: tf.Scalar): number {
  const v = t.dataSync()[0];
  t.dispose();
  return v;
}

/**
 * Seeded images of `numClasses` (≤ 4) patterns: class k is a bright square in quadrant k on a dim noisy
 * background, pixels in [0, 1].
 */
export function quadrantImages(count: number, shape: [number, number, number], numClasses: number, seed: number): ImageSet {
  const [h, w, c] = shape;
  const random = new SeededRandom(seed);
  const images = new Float32Array(count * h * w * c);
  const labels = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    const k = n % numClasses;
    labels[n] = k;
    const top = k < 2 ? 0 : h / 2;
    const left = k % 2 === 0 ? 0 : w / 2;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const inside = y >= top && y < top + h / 2 && x >= left && x < left + w / 2;
        for (let ch = 0; ch < c; ch++) {
          const v = (inside ? 0.8 : 0.2) + 0.1 * random.gaussian();
          images[((n * h + y) * w + x) * c + ch] = Math.min(1, Math.max(0, v));
        }
      }
    }
  }
  return { images, labels, count, shape, numClasses };
}

/** A bnConvNet trained briefly on quadrantImages, so its BN running statistics are those of real [0, 1] images. */
export async function trainedBnTeacher(shape: [number, number, number], numClasses: number, seed: number): Promise<tf.LayersModel> {
  const model = bnConvNet(shape, numClasses, seed);
  await trainClassifier(model, quadrantImages(240, shape, numClasses, seed), { epochs: 4, batchSize: 24, optimizer: 'adam', learningRate: 1e-2, seed });
  return model;
}
