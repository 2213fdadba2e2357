import path from 'node:path';
import { z } from 'zod';
import { SeededRandom } from '../random';
import { BUILTIN_DATASETS, isBuiltinDatasetName, loadBuiltinDataset, type BuiltinDatasetOptions } from './builtin';
import { checkCifarDir, readCifar10, readCifar100 } from './cifar';
import { DatasetFormatError, DatasetSourceError } from './errors';
import { readIdxDataset, readIdxHeader } from './idx';
import { readImageFolder, scanImageFolder } from './image-folder';
import { selectImages, type ImageSet, type LabelledDataset } from './image-set';
import { toLabelledDataset } from './raw';

/** Where a data set comes from. Paths are files or folders on the server's file system; nothing is ever executed. */
export type DatasetSource =
  | { kind: 'builtin'; name: string }
  | { kind: 'idx'; trainImages: string; trainLabels: string; testImages: string; testLabels: string }
  | { kind: 'cifar10' | 'cifar100'; dir: string }
  | { kind: 'image-folder'; dir: string; channels?: 1 | 3 };

const pathField = z.string().min(1, 'a path is required');

/** Schema of a DatasetSource, for sources that arrive as JSON (GraphQL, pipeline files). */
export const datasetSourceSchema: z.ZodType<DatasetSource> = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('builtin'), name: z.string().min(1) }),
  z.object({ kind: z.literal('idx'), trainImages: pathField, trainLabels: pathField, testImages: pathField, testLabels: pathField }),
  z.object({ kind: z.enum(['cifar10', 'cifar100']), dir: pathField }),
  z.object({ kind: z.literal('image-folder'), dir: pathField, channels: z.union([z.literal(1), z.literal(3)]).optional() }),
]);

/** Parses an untrusted value into a DatasetSource, with a readable error. */
export function parseDatasetSource(value: unknown): DatasetSource {
  const parsed = datasetSourceSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'source'}: ${i.message}`).join('; ');
    throw new DatasetSourceError(`invalid dataset source: ${problems}`);
  }
  return parsed.data;
}

export function describeDatasetSource(source: DatasetSource): string {
  switch (source.kind) {
    case 'builtin':
      return `built-in dataset ${source.name}`;
    case 'idx':
      return `IDX files (train: ${source.trainImages}, ${source.trainLabels}; test: ${source.testImages}, ${source.testLabels})`;
    case 'cifar10':
      return `CIFAR-10 binary files in ${source.dir}`;
    case 'cifar100':
      return `CIFAR-100 binary files in ${source.dir}`;
    case 'image-folder':
      return `class-per-folder images in ${source.dir}${source.channels ? ` (${source.channels} channel(s))` : ''}`;
  }
}

/** What a validation learned about a source without decoding its images. */
export interface DatasetSourceCheck {
  description: string;
  trainCount?: number;
  testCount?: number;
  classNames?: string[];
}

/**
 * Checks that a source can be loaded (names known, files and folders present, headers and sizes
 * consistent) without decoding the data; throws a DatasetError saying what is wrong.
 */
export function validateDatasetSource(source: DatasetSource): DatasetSourceCheck {
  const description = describeDatasetSource(source);
  switch (source.kind) {
    case 'builtin':
      if (!isBuiltinDatasetName(source.name)) {
        throw new DatasetSourceError(`unknown built-in dataset "${source.name}"; built-in datasets are ${BUILTIN_DATASETS.join(', ')}`);
      }
      return { description };
    case 'idx': {
      const [trainImages, trainLabels, testImages, testLabels] = [source.trainImages, source.trainLabels, source.testImages, source.testLabels].map(
        (f) => ({ file: path.resolve(f), dims: readIdxHeader(path.resolve(f)).dims }),
      );
      for (const [images, labels] of [[trainImages, trainLabels], [testImages, testLabels]]) {
        if (images.dims.length !== 3 && images.dims.length !== 4) {
          throw new DatasetFormatError(images.file, `an image file must have dimensions [N, height, width] or [N, height, width, channels]; found [${images.dims.join(', ')}]`);
        }
        if (labels.dims.length !== 1) throw new DatasetFormatError(labels.file, `a label file must have one dimension [N]; found [${labels.dims.join(', ')}]`);
        if (labels.dims[0] !== images.dims[0]) {
          throw new DatasetFormatError(labels.file, `holds ${labels.dims[0]} labels but ${images.file} holds ${images.dims[0]} images`);
        }
      }
      if (trainImages.dims.slice(1).join('x') !== testImages.dims.slice(1).join('x')) {
        throw new DatasetFormatError(testImages.file, `images are ${testImages.dims.slice(1).join('x')} but the training images are ${trainImages.dims.slice(1).join('x')}`);
      }
      return { description, trainCount: trainImages.dims[0], testCount: testImages.dims[0] };
    }
    case 'cifar10':
    case 'cifar100':
      return { description, ...checkCifarDir(source.kind, path.resolve(source.dir)) };
    case 'image-folder': {
      const layout = scanImageFolder(source.dir);
      return layout.presplit
        ? { description, classNames: layout.classNames, trainCount: layout.train.length, testCount: layout.test.length }
        : { description, classNames: layout.classNames };
    }
  }
}

/** `dataDir` for caches, plus the options of the built-ins; image folders are always split with seed 0. */
export type LoadDatasetOptions = BuiltinDatasetOptions;

/** Loads any data set source into memory (float pixels in [0, 1], NHWC). */
export async function loadDataset(source: DatasetSource, options: LoadDatasetOptions): Promise<LabelledDataset> {
  switch (source.kind) {
    case 'builtin':
      return loadBuiltinDataset(source.name, options);
    case 'idx':
      return toLabelledDataset(
        readIdxDataset({
          trainImages: path.resolve(source.trainImages),
          trainLabels: path.resolve(source.trainLabels),
          testImages: path.resolve(source.testImages),
          testLabels: path.resolve(source.testLabels),
        }),
      );
    case 'cifar10':
      return toLabelledDataset(readCifar10(path.resolve(source.dir)));
    case 'cifar100':
      return toLabelledDataset(readCifar100(path.resolve(source.dir)));
    case 'image-folder':
      return toLabelledDataset(readImageFolder(source.dir, { channels: source.channels }));
  }
}

/**
 * The first `nPerClass` images of each class after a seeded shuffle (classes in order). Throws when a class
 * has fewer images than asked for.
 */
export function subsetPerClass(set: ImageSet, nPerClass: number, seed: number): ImageSet {
  if (!Number.isInteger(nPerClass) || nPerClass < 1) throw new RangeError(`nPerClass must be a positive integer; got ${nPerClass}`);
  const order = new SeededRandom(seed).permutation(set.count);
  const chosen: number[][] = Array.from({ length: set.numClasses }, () => []);
  for (const i of order) {
    const c = set.labels[i];
    if (chosen[c].length < nPerClass) chosen[c].push(i);
  }
  const short = chosen.findIndex((c) => c.length < nPerClass);
  if (short >= 0) throw new DatasetSourceError(`class ${short} has only ${chosen[short].length} images; ${nPerClass} per class were asked for`);
  return selectImages(set, chosen.flat());
}

/** Shuffled mini-batches (seeded by `rng`) covering the set once; the last one may be smaller. */
export function* datasetBatches(set: ImageSet, batchSize: number, rng: SeededRandom): Generator<ImageSet> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer; got ${batchSize}`);
  const order = rng.permutation(set.count);
  for (let start = 0; start < set.count; start += batchSize) {
    yield selectImages(set, order.subarray(start, Math.min(start + batchSize, set.count)));
  }
}
