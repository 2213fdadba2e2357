import { SeededRandom } from '../../src/core/random';
import {
  datasetBatches,
  describeDatasetSource,
  parseDatasetSource,
  subsetPerClass,
  validateDatasetSource,
} from '../../src/core/data/catalog';
import { DatasetError, DatasetSourceError } from '../../src/core/data/errors';
import { datasetHash, imageSetHash } from '../../src/core/data/hash';
import type { ImageSet, LabelledDataset } from '../../src/core/data/image-set';
import { InvalidInputError } from '../../src/core/errors';

/** 30 images of 2×2×1 with labels 0,1,2 repeating; image i has every pixel i / 100. */
function smallSet(): ImageSet {
  const count = 30;
  return {
    images: Float32Array.from({ length: count * 4 }, (_, k) => Math.floor(k / 4) / 100),
    labels: Int32Array.from({ length: count }, (_, i) => i % 3),
    count,
    shape: [2, 2, 1],
    numClasses: 3,
  };
}

describe('dataset catalog helpers', () => {
  it('subsetPerClass takes n images of each class, seeded, and refuses more than a class has', () => {
    const set = smallSet();
    const a = subsetPerClass(set, 4, 7);
    expect(a.count).toBe(12);
    expect(Array.from(a.labels)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    // Each chosen image keeps its own label: image i has label i % 3.
    for (let k = 0; k < a.count; k++) expect(Math.round(a.images[k * 4] * 100) % 3).toBe(a.labels[k]);
    expect(Array.from(subsetPerClass(set, 4, 7).images)).toEqual(Array.from(a.images));
    expect(Array.from(subsetPerClass(set, 4, 8).images)).not.toEqual(Array.from(a.images));
    expect(() => subsetPerClass(set, 11, 0)).toThrow(/class 0 has only 10 images; 11 per class were asked for/);
  });

  it('datasetBatches covers every image once in seeded order', () => {
    const set = smallSet();
    const batches = [...datasetBatches(set, 8, new SeededRandom(1))];
    expect(batches.map((b) => b.count)).toEqual([8, 8, 8, 6]);
    const seen = batches.flatMap((b) => Array.from({ length: b.count }, (_, k) => Math.round(b.images[k * 4] * 100)));
    expect([...seen].sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    const again = [...datasetBatches(set, 8, new SeededRandom(1))];
    expect(Array.from(again[0].labels)).toEqual(Array.from(batches[0].labels));
  });

  it('datasetHash changes with any pixel, label or class name, and not with provenance', () => {
    const make = (): LabelledDataset => ({ name: 'x', classNames: ['a', 'b', 'c'], provenance: 'p', train: smallSet(), test: smallSet() });
    const base = datasetHash(make());
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(datasetHash(make())).toBe(base);
    expect(datasetHash({ ...make(), provenance: 'other words' })).toBe(base);
    const pixel = make();
    pixel.test.images[17] += 1e-6;
    expect(datasetHash(pixel)).not.toBe(base);
    const label = make();
    label.train.labels[3] = 1;
    expect(datasetHash(label)).not.toBe(base);
    expect(datasetHash({ ...make(), classNames: ['a', 'b', 'd'] })).not.toBe(base);
    // Same bytes cut into a different shape hash differently.
    expect(imageSetHash({ ...smallSet(), shape: [4, 1, 1] })).not.toBe(imageSetHash(smallSet()));
  });

  it('parses, describes and validates sources with errors the API can show', () => {
    expect(parseDatasetSource({ kind: 'cifar10', dir: '/data/cifar' })).toEqual({ kind: 'cifar10', dir: '/data/cifar' });
    expect(() => parseDatasetSource({ kind: 'cifar10' })).toThrow(DatasetSourceError);
    expect(() => parseDatasetSource({ kind: 'script', file: 'x.js' })).toThrow(/invalid dataset source/);
    expect(() => parseDatasetSource({ kind: 'image-folder', dir: '/d', channels: 2 })).toThrow(/channels/);
    expect(describeDatasetSource({ kind: 'image-folder', dir: '/d', channels: 1 })).toBe('class-per-folder images in /d (1 channel(s))');
    expect(validateDatasetSource({ kind: 'builtin', name: 'mnist' })).toEqual({ description: 'built-in dataset mnist' });
    let error: unknown;
    try {
      validateDatasetSource({ kind: 'builtin', name: 'cifar-10' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DatasetError);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toMatch(/unknown built-in dataset "cifar-10"/);
    expect(() => validateDatasetSource({ kind: 'idx', trainImages: '/nope/a', trainLabels: '/nope/b', testImages: '/nope/c', testLabels: '/nope/d' })).toThrow(
      /IDX file \/nope\/a does not exist/,
    );
  });
});
