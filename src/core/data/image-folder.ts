import fs from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { SeededRandom } from '../random';
import { DatasetFormatError, DatasetSourceError } from './errors';
import type { RawDataset, RawImageSet } from './raw';

export interface ImageFolderOptions {
  /** Force 1 (grey, by luma when the images have colour) or 3 (RGB) channels; by default the data decides. */
  channels?: 1 | 3;
  /** Seed of the split when the folder has no train/ and test/ (default 0). */
  seed?: number;
  /** Share of each class held out for testing when the folder has no train/ and test/ (default 0.2). */
  testFraction?: number;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

interface LabelledFile {
  file: string;
  label: number;
}

/** What a folder holds, found from names only (nothing decoded). */
export interface ImageFolderLayout {
  root: string;
  /** True when the folder has train/ and test/ with class folders inside; otherwise classes are at the top. */
  presplit: boolean;
  classNames: string[];
  train: LabelledFile[];
  /** Files of the held-out split (only when `presplit`). */
  test: LabelledFile[];
}

function listDirs(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

function listImages(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.startsWith('.') && IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase()))
    .map((e) => e.name)
    .sort()
    .map((n) => path.join(dir, n));
}

/** Finds classes and image files; throws when the folder cannot be a class-per-folder data set. */
export function scanImageFolder(dir: string): ImageFolderLayout {
  const root = path.resolve(dir);
  if (!fs.existsSync(root)) throw new DatasetSourceError(`image folder ${root} does not exist`);
  if (!fs.statSync(root).isDirectory()) throw new DatasetSourceError(`image folder path ${root} is not a directory`);
  const top = listDirs(root);
  const presplit = top.includes('train') && top.includes('test');
  const trainRoot = presplit ? path.join(root, 'train') : root;
  const classNames = listDirs(trainRoot);
  if (classNames.length === 0) {
    throw new DatasetSourceError(
      `image folder ${trainRoot} has no class folders: expected <class>/*.png|jpg, or train/<class>/* and test/<class>/*`,
    );
  }
  const collect = (base: string, classes: string[]): LabelledFile[] =>
    classes.flatMap((name) => listImages(path.join(base, name)).map((file) => ({ file, label: classNames.indexOf(name) })));
  const train = collect(trainRoot, classNames);
  for (let c = 0; c < classNames.length; c++) {
    if (!train.some((f) => f.label === c)) {
      throw new DatasetSourceError(`class folder ${path.join(trainRoot, classNames[c])} holds no .png or .jpg images`);
    }
  }
  let test: LabelledFile[] = [];
  if (presplit) {
    const testClasses = listDirs(path.join(root, 'test'));
    const unknown = testClasses.filter((c) => !classNames.includes(c));
    if (unknown.length > 0) {
      throw new DatasetSourceError(`test folder ${path.join(root, 'test')} has classes that train/ lacks: ${unknown.join(', ')}`);
    }
    test = collect(path.join(root, 'test'), testClasses);
    if (test.length === 0) throw new DatasetSourceError(`test folder ${path.join(root, 'test')} holds no .png or .jpg images`);
  }
  return { root, presplit, classNames, train, test };
}

interface DecodedImage {
  width: number;
  height: number;
  /** RGBA, 8 bits per channel. */
  rgba: Uint8Array;
}

export function decodeImageFile(file: string): DecodedImage {
  const bytes = fs.readFileSync(file);
  const ext = path.extname(file).toLowerCase();
  try {
    if (ext === '.png') {
      const png = PNG.sync.read(bytes);
      return { width: png.width, height: png.height, rgba: png.data };
    }
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
    return { width: img.width, height: img.height, rgba: img.data };
  } catch (e) {
    throw new DatasetFormatError(file, `cannot decode ${ext === '.png' ? 'PNG' : 'JPEG'} image (${(e as Error).message})`);
  }
}

/** Decodes files into RGB bytes; all images must have the size of the first one. */
function decodeAll(files: LabelledFile[]) {
  let expected: { width: number; height: number } | undefined;
  let rgb = new Uint8Array(0);
  let grey = true;
  files.forEach(({ file }, i) => {
    const img = decodeImageFile(file);
    if (!expected) expected = { width: img.width, height: img.height };
    if (img.width !== expected.width || img.height !== expected.height) {
      throw new DatasetFormatError(
        file,
        `image is ${img.width}x${img.height} but the others are ${expected.width}x${expected.height}; all images of a data set must share one size`,
      );
    }
    const pixels = img.width * img.height;
    if (i === 0) rgb = new Uint8Array(files.length * pixels * 3);
    const base = i * pixels * 3;
    for (let p = 0; p < pixels; p++) {
      const r = img.rgba[4 * p];
      const g = img.rgba[4 * p + 1];
      const b = img.rgba[4 * p + 2];
      rgb[base + 3 * p] = r;
      rgb[base + 3 * p + 1] = g;
      rgb[base + 3 * p + 2] = b;
      if (r !== g || g !== b) grey = false;
    }
  });
  return { rgb, grey, size: expected };
}

/** RGB bytes to one channel: the red channel when grey, else ITU-R BT.601 luma. */
function toSingleChannel(rgb: Uint8Array): Uint8Array {
  const out = new Uint8Array(rgb.length / 3);
  for (let i = 0; i < out.length; i++) {
    out[i] = (0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2] + 0.5) | 0;
  }
  return out;
}

/** Per class, a seeded `testFraction` of the files (at least one when the class has two or more). */
function seededSplit(files: LabelledFile[], numClasses: number, seed: number, testFraction: number) {
  const rng = new SeededRandom(seed);
  const train: LabelledFile[] = [];
  const test: LabelledFile[] = [];
  for (let c = 0; c < numClasses; c++) {
    const of = files.filter((f) => f.label === c);
    const nTest = of.length >= 2 ? Math.max(1, Math.round(of.length * testFraction)) : 0;
    const order = rng.permutation(of.length);
    const held = new Set(Array.from(order.subarray(0, nTest)));
    of.forEach((f, i) => (held.has(i) ? test : train).push(f));
  }
  return { train, test };
}

/**
 * Reads a class-per-folder image data set: `train/<class>/*` and `test/<class>/*`, or `<class>/*` with a
 * seeded per-class split. PNG and JPEG; the alpha channel is ignored. Class names are the folder names, sorted.
 */
export function readImageFolder(dir: string, options: ImageFolderOptions = {}): RawDataset {
  const testFraction = options.testFraction ?? 0.2;
  if (!(testFraction > 0 && testFraction < 1)) throw new RangeError(`testFraction must be in (0, 1); got ${testFraction}`);
  const seed = options.seed ?? 0;
  const layout = scanImageFolder(dir);
  const numClasses = layout.classNames.length;
  const { train: trainFiles, test: testFiles } = layout.presplit
    ? { train: layout.train, test: layout.test }
    : seededSplit(layout.train, numClasses, seed, testFraction);
  const all = [...trainFiles, ...testFiles];
  if (testFiles.length === 0) {
    throw new DatasetSourceError(`image folder ${layout.root}: no image can be held out for testing; every class has a single image`);
  }
  const decoded = decodeAll(all);
  const { width, height } = decoded.size!;
  const channels = options.channels ?? (decoded.grey ? 1 : 3);
  const pixels = channels === 3 ? decoded.rgb : toSingleChannel(decoded.rgb);
  const imageBytes = width * height * channels;
  const split = (from: number, files: LabelledFile[]): RawImageSet => ({
    pixels: pixels.slice(from * imageBytes, (from + files.length) * imageBytes),
    labels: Int32Array.from(files, (f) => f.label),
    count: files.length,
    shape: [height, width, channels],
  });
  const how = layout.presplit
    ? 'split given by its train/ and test/ folders'
    : `seeded split (seed ${seed}): ${Math.round(testFraction * 100)}% of each class held out for testing`;
  const channelText = options.channels ? `${channels} channel(s), forced` : `${channels} channel(s), ${decoded.grey ? 'grey' : 'colour'} in the data`;
  return {
    name: path.basename(layout.root),
    classNames: layout.classNames,
    provenance: `image folder ${layout.root}: ${trainFiles.length} train / ${testFiles.length} test images, ${width}x${height}, ${channelText}; ${how}`,
    train: split(0, trainFiles),
    test: split(trainFiles.length, testFiles),
  };
}
