import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCifar10, readCifar100, CIFAR10_CLASSES } from '../../src/core/data/cifar';
import { loadDataset, validateDatasetSource } from '../../src/core/data/catalog';
import { DatasetFormatError, DatasetSourceError } from '../../src/core/data/errors';

/** Pixel value of image n, channel c, row y, column x in the generated files. */
const value = (n: number, c: number, y: number, x: number) => (n * 7 + c * 50 + y * 3 + x) % 256;

/** Writes CIFAR binary records: label bytes, then the red, green and blue 32×32 planes (CHW). */
function writeRecords(file: string, labels: number[][], firstIndex: number): void {
  const labelBytes = labels[0].length;
  const record = labelBytes + 3072;
  const buf = Buffer.alloc(labels.length * record);
  labels.forEach((ls, r) => {
    ls.forEach((l, k) => (buf[r * record + k] = l));
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++) buf[r * record + labelBytes + c * 1024 + y * 32 + x] = value(firstIndex + r, c, y, x);
  });
  fs.writeFileSync(file, buf);
}

let root: string;
let cifar10: string;
let cifar100: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-cifar-'));
  cifar10 = path.join(root, 'c10');
  fs.mkdirSync(cifar10);
  for (let b = 1; b <= 5; b++) writeRecords(path.join(cifar10, `data_batch_${b}.bin`), [[b], [(b + 5) % 10]], (b - 1) * 2);
  writeRecords(path.join(cifar10, 'test_batch.bin'), [[9], [0], [3]], 100);
  // The archive layout: files inside cifar-100-binary/.
  cifar100 = path.join(root, 'c100');
  fs.mkdirSync(path.join(cifar100, 'cifar-100-binary'), { recursive: true });
  writeRecords(path.join(cifar100, 'cifar-100-binary', 'train.bin'), [[0, 4], [19, 99], [5, 42]], 0);
  writeRecords(path.join(cifar100, 'cifar-100-binary', 'test.bin'), [[3, 7]], 50);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('CIFAR binary reader', () => {
  it('reads CIFAR-10 batches in order with labels, converting CHW to HWC', () => {
    const ds = readCifar10(cifar10);
    expect(ds.train.count).toBe(10);
    expect(ds.test.count).toBe(3);
    expect(ds.train.shape).toEqual([32, 32, 3]);
    expect(Array.from(ds.train.labels)).toEqual([1, 6, 2, 7, 3, 8, 4, 9, 5, 0]);
    expect(Array.from(ds.test.labels)).toEqual([9, 0, 3]);
    expect(ds.classNames).toEqual(CIFAR10_CLASSES);
    // A known pixel: train image 3 (batch 2, record 1), blue channel, row 5, column 17.
    expect(ds.train.pixels[3 * 3072 + (5 * 32 + 17) * 3 + 2]).toBe(value(3, 2, 5, 17));
    for (const [set, first] of [[ds.train, 0], [ds.test, 100]] as const) {
      for (let n = 0; n < set.count; n++)
        for (let y = 0; y < 32; y++)
          for (let x = 0; x < 32; x++)
            for (let c = 0; c < 3; c++) if (set.pixels[n * 3072 + (y * 32 + x) * 3 + c] !== value(first + n, c, y, x)) throw new Error(`pixel ${n},${y},${x},${c}`);
    }
  });

  it('reads CIFAR-100 (fine labels as classes, coarse as contexts) from the archive folder', async () => {
    const raw = readCifar100(cifar100);
    expect(Array.from(raw.train.labels)).toEqual([4, 99, 42]);
    expect(Array.from(raw.train.contexts!)).toEqual([0, 19, 5]);
    expect(raw.classNames).toHaveLength(100);
    expect(raw.contextNames).toHaveLength(20);
    expect(raw.classNames[1]).toBe('aquarium_fish');
    expect(raw.contextNames![19]).toBe('vehicles_2');
    const ds = await loadDataset({ kind: 'cifar100', dir: cifar100 }, { dataDir: root });
    // Test image 0 is generated image 50: red channel at row 0, column 0.
    expect(ds.test.images[0]).toBeCloseTo(value(50, 0, 0, 0) / 255, 6);
    expect(ds.test.images[(31 * 32 + 31) * 3 + 1]).toBeCloseTo(value(50, 1, 31, 31) / 255, 6);
    expect(ds.train.numClasses).toBe(100);
    expect(validateDatasetSource({ kind: 'cifar100', dir: cifar100 })).toMatchObject({ trainCount: 3, testCount: 1 });
  });

  it('rejects a missing directory, missing batches, truncated files and bad labels', () => {
    expect(() => readCifar10(path.join(root, 'absent'))).toThrow(DatasetSourceError);
    expect(() => readCifar10(path.join(root, 'absent'))).toThrow(/does not exist/);
    const partial = path.join(root, 'partial');
    fs.mkdirSync(partial);
    fs.copyFileSync(path.join(cifar10, 'test_batch.bin'), path.join(partial, 'test_batch.bin'));
    expect(() => readCifar10(partial)).toThrow(/lacks data_batch_1.bin, data_batch_2.bin/);
    expect(() => validateDatasetSource({ kind: 'cifar10', dir: partial })).toThrow(/lacks data_batch_1.bin/);

    const truncated = path.join(root, 'truncated');
    fs.cpSync(cifar10, truncated, { recursive: true });
    const test = path.join(truncated, 'test_batch.bin');
    fs.truncateSync(test, 3073 * 2 + 100);
    expect(() => readCifar10(truncated)).toThrow(DatasetFormatError);
    expect(() => readCifar10(truncated)).toThrow(/test_batch.bin: size 6246 bytes is not a multiple of the 3073-byte record/);
    expect(() => validateDatasetSource({ kind: 'cifar10', dir: truncated })).toThrow(/not a multiple/);

    const badLabel = path.join(root, 'bad-label');
    fs.cpSync(cifar10, badLabel, { recursive: true });
    writeRecords(path.join(badLabel, 'test_batch.bin'), [[1], [12]], 0);
    expect(() => readCifar10(badLabel)).toThrow(/record 1 has label 12; labels must be below 10/);
  });
});
