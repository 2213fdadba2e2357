import fs from 'node:fs';
import path from 'node:path';
import { DatasetFormatError, DatasetSourceError } from './errors';
import type { RawDataset, RawImageSet } from './raw';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const IMAGE_BYTES = 3 * PLANE;

export const CIFAR10_TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const CIFAR10_TEST_FILE = 'test_batch.bin';
export const CIFAR100_TRAIN_FILE = 'train.bin';
export const CIFAR100_TEST_FILE = 'test.bin';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

export const CIFAR100_COARSE_CLASSES = [
  'aquatic_mammals', 'fish', 'flowers', 'food_containers', 'fruit_and_vegetables', 'household_electrical_devices',
  'household_furniture', 'insects', 'large_carnivores', 'large_man-made_outdoor_things', 'large_natural_outdoor_scenes',
  'large_omnivores_and_herbivores', 'medium_mammals', 'non-insect_invertebrates', 'people', 'reptiles', 'small_mammals',
  'trees', 'vehicles_1', 'vehicles_2',
];

export const CIFAR100_FINE_CLASSES = [
  'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle', 'bottle',
  'bowl', 'boy', 'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle', 'caterpillar', 'cattle',
  'chair', 'chimpanzee', 'clock', 'cloud', 'cockroach', 'couch', 'crab', 'crocodile', 'cup', 'dinosaur',
  'dolphin', 'elephant', 'flatfish', 'forest', 'fox', 'girl', 'hamster', 'house', 'kangaroo', 'keyboard',
  'lamp', 'lawn_mower', 'leopard', 'lion', 'lizard', 'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain',
  'mouse', 'mushroom', 'oak_tree', 'orange', 'orchid', 'otter', 'palm_tree', 'pear', 'pickup_truck', 'pine_tree',
  'plain', 'plate', 'poppy', 'porcupine', 'possum', 'rabbit', 'raccoon', 'ray', 'road', 'rocket',
  'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk', 'skyscraper', 'snail', 'snake', 'spider',
  'squirrel', 'streetcar', 'sunflower', 'sweet_pepper', 'table', 'tank', 'telephone', 'television', 'tiger', 'tractor',
  'train', 'trout', 'tulip', 'turtle', 'wardrobe', 'whale', 'willow_tree', 'wolf', 'woman', 'worm',
];

/** Which folder holds the files: `dir` itself or the folder the official archive unpacks to. */
function resolveCifarDir(dir: string, marker: string, archiveFolder: string): string {
  if (!fs.existsSync(dir)) throw new DatasetSourceError(`CIFAR directory ${dir} does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new DatasetSourceError(`CIFAR path ${dir} is not a directory`);
  const nested = path.join(dir, archiveFolder);
  if (!fs.existsSync(path.join(dir, marker)) && fs.existsSync(path.join(nested, marker))) return nested;
  return dir;
}

function requireFiles(dir: string, names: string[], what: string): string[] {
  const files = names.map((n) => path.join(dir, n));
  const missing = names.filter((_, i) => !fs.existsSync(files[i]) || !fs.statSync(files[i]).isFile());
  if (missing.length > 0) {
    throw new DatasetSourceError(`${what} directory ${dir} lacks ${missing.join(', ')} (the binary version of the data set is needed: ${names.join(', ')})`);
  }
  return files;
}

function checkRecordSize(file: string, size: number, recordBytes: number): number {
  if (size === 0) throw new DatasetFormatError(file, 'file is empty');
  if (size % recordBytes !== 0) {
    throw new DatasetFormatError(file, `size ${size} bytes is not a multiple of the ${recordBytes}-byte record (${recordBytes - IMAGE_BYTES} label byte(s) + 3072 pixel bytes); the file is truncated or not CIFAR binary`);
  }
  return size / recordBytes;
}

/**
 * Decodes CIFAR binary records (label bytes, then 1024 red, 1024 green, 1024 blue bytes, row-major)
 * into HWC pixels. `labelBytes` is 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine).
 */
function decodeRecords(files: string[], labelBytes: number, labelLimits: number[]): { pixels: Uint8Array; labels: Int32Array[]; count: number } {
  const recordBytes = labelBytes + IMAGE_BYTES;
  const buffers = files.map((f) => fs.readFileSync(f));
  const counts = buffers.map((b, i) => checkRecordSize(files[i], b.length, recordBytes));
  const count = counts.reduce((a, b) => a + b, 0);
  const pixels = new Uint8Array(count * IMAGE_BYTES);
  const labels = Array.from({ length: labelBytes }, () => new Int32Array(count));
  let n = 0;
  buffers.forEach((buf, fi) => {
    for (let r = 0; r < counts[fi]; r++, n++) {
      const base = r * recordBytes;
      for (let k = 0; k < labelBytes; k++) {
        const label = buf[base + k];
        if (label >= labelLimits[k]) {
          throw new DatasetFormatError(files[fi], `record ${r} has label ${label}; labels must be below ${labelLimits[k]}`);
        }
        labels[k][n] = label;
      }
      const src = base + labelBytes;
      const dst = n * IMAGE_BYTES;
      for (let p = 0; p < PLANE; p++) {
        pixels[dst + 3 * p] = buf[src + p];
        pixels[dst + 3 * p + 1] = buf[src + PLANE + p];
        pixels[dst + 3 * p + 2] = buf[src + 2 * PLANE + p];
      }
    }
  });
  return { pixels, labels, count };
}

/** Class names from a names file of the archive (one per line) when present and complete, else the defaults. */
function namesFromFile(file: string, expected: string[]): string[] {
  if (!fs.existsSync(file)) return expected;
  const names = fs.readFileSync(file, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
  return names.length === expected.length ? names : expected;
}

/** Reads the CIFAR-10 binary version: data_batch_1..5.bin (train), test_batch.bin (test). */
export function readCifar10(dir: string): RawDataset {
  const root = resolveCifarDir(dir, CIFAR10_TEST_FILE, 'cifar-10-batches-bin');
  const trainFiles = requireFiles(root, CIFAR10_TRAIN_FILES, 'CIFAR-10');
  const [testFile] = requireFiles(root, [CIFAR10_TEST_FILE], 'CIFAR-10');
  const train = decodeRecords(trainFiles, 1, [10]);
  const test = decodeRecords([testFile], 1, [10]);
  const split = (d: typeof train): RawImageSet => ({ pixels: d.pixels, labels: d.labels[0], count: d.count, shape: [SIDE, SIDE, 3] });
  return {
    name: 'cifar10',
    classNames: namesFromFile(path.join(root, 'batches.meta.txt'), CIFAR10_CLASSES),
    provenance: `CIFAR-10 binary files in ${root}: official split, train = data_batch_1..5 (${train.count} images), test = test_batch (${test.count} images)`,
    train: split(train),
    test: split(test),
  };
}

/**
 * Reads the CIFAR-100 binary version: train.bin, test.bin, each record coarse label, fine label, pixels.
 * Classes are the 100 fine labels; the 20 coarse labels become the context labels.
 */
export function readCifar100(dir: string): RawDataset {
  const root = resolveCifarDir(dir, CIFAR100_TEST_FILE, 'cifar-100-binary');
  const [trainFile, testFile] = requireFiles(root, [CIFAR100_TRAIN_FILE, CIFAR100_TEST_FILE], 'CIFAR-100');
  const train = decodeRecords([trainFile], 2, [20, 100]);
  const test = decodeRecords([testFile], 2, [20, 100]);
  const split = (d: typeof train): RawImageSet => ({
    pixels: d.pixels,
    labels: d.labels[1],
    contexts: d.labels[0],
    count: d.count,
    shape: [SIDE, SIDE, 3],
  });
  return {
    name: 'cifar100',
    classNames: namesFromFile(path.join(root, 'fine_label_names.txt'), CIFAR100_FINE_CLASSES),
    contextNames: namesFromFile(path.join(root, 'coarse_label_names.txt'), CIFAR100_COARSE_CLASSES),
    provenance: `CIFAR-100 binary files in ${root}: official split, train = train.bin (${train.count} images), test = test.bin (${test.count} images); classes are the 100 fine labels, contexts the 20 coarse labels`,
    train: split(train),
    test: split(test),
  };
}

/** Checks that a CIFAR directory has the files with plausible sizes, without decoding them. */
export function checkCifarDir(kind: 'cifar10' | 'cifar100', dir: string): { trainCount: number; testCount: number } {
  const [marker, archiveFolder, trainNames, testName, labelBytes] =
    kind === 'cifar10'
      ? [CIFAR10_TEST_FILE, 'cifar-10-batches-bin', CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, 1]
      : [CIFAR100_TEST_FILE, 'cifar-100-binary', [CIFAR100_TRAIN_FILE], CIFAR100_TEST_FILE, 2];
  const root = resolveCifarDir(dir, marker, archiveFolder);
  const what = kind === 'cifar10' ? 'CIFAR-10' : 'CIFAR-100';
  const trainFiles = requireFiles(root, trainNames, what);
  const [testFile] = requireFiles(root, [testName], what);
  const records = (f: string) => checkRecordSize(f, fs.statSync(f).size, labelBytes + IMAGE_BYTES);
  return { trainCount: trainFiles.reduce((a, f) => a + records(f), 0), testCount: records(testFile) };
}
