import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { builtinCacheFile, loadBuiltinDataset } from '../../src/core/data/builtin';
import { datasetHash } from '../../src/core/data/hash';
import type { LabelledDataset } from '../../src/core/data/image-set';
import crypto from 'node:crypto';
import { mnistDataFiles, MNIST_PROVENANCE } from '../../src/core/data/mnist-sources';

// The data set is built once here and reused.
let dataDir: string;
let first: LabelledDataset;
const logLines: string[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => logLines.push(line) });
const messages = () => logLines.map((l) => JSON.parse(l).msg as string);

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-mnist-'));
  first = await loadBuiltinDataset('mnist', { dataDir, log });
});
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

describe('built-in MNIST', () => {
  it('has the official split: 60,000 train, 10,000 test, 28x28x1, labels 0..9, pixels in [0, 1]', () => {
    expect(first.name).toBe('mnist');
    expect(first.provenance).toBe(MNIST_PROVENANCE);
    expect(first.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    for (const [set, n] of [[first.train, 60000], [first.test, 10000]] as const) {
      expect(set.count).toBe(n);
      expect(set.shape).toEqual([28, 28, 1]);
      expect(set.images.length).toBe(n * 784);
      expect(set.numClasses).toBe(10);
      const perClass = new Array(10).fill(0);
      for (const l of set.labels) perClass[l]++;
      expect(perClass.reduce((a, b) => a + b, 0)).toBe(n);
      // Every digit is present in a share near 10% (MNIST's classes are 9-11% each).
      for (const c of perClass) expect(c / n).toBeGreaterThan(0.08);
      let min = Infinity;
      let max = -Infinity;
      for (const v of set.images) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      expect(min).toBe(0);
      expect(max).toBe(1);
    }
  });

  it('is the official MNIST: files with the official checksums, read byte for byte', () => {
    // Checksums of LeCun's uncompressed files, written here independently of the reader's own check.
    const official: Record<string, string> = {
      trainImages: '6bbc9ace898e44ae57da46a324031adb',
      trainLabels: 'a25bea736e30d166cdddb491f175f624',
      testImages: '2646ac647ad5339dbf082846283269ea',
      testLabels: '27ae3e4e09519cfbb04c329615203637',
    };
    const files = mnistDataFiles();
    for (const [key, file] of Object.entries(files)) {
      expect([key, crypto.createHash('md5').update(fs.readFileSync(file)).digest('hex')]).toEqual([key, official[key]]);
    }
    // The first labels of each split, as published.
    expect(Array.from(first.train.labels.subarray(0, 10))).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(Array.from(first.test.labels.subarray(0, 10))).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    // Pixels: byte/255, in file order (16-byte IDX header).
    const testBytes = fs.readFileSync(files.testImages).subarray(16);
    let worst = 0;
    for (let i = 0; i < testBytes.length; i += 997) worst = Math.max(worst, Math.abs(first.test.images[i] - testBytes[i] / 255));
    expect(worst).toBeLessThan(1e-6);
    // No test image is also a training image (the split is the official one, not a re-cut of one file).
    const key = (images: Float32Array, i: number) => Buffer.from(images.buffer, images.byteOffset + i * 784 * 4, 784 * 4).toString('base64');
    const trainKeys = new Set<string>();
    for (let i = 0; i < first.train.count; i++) trainKeys.add(key(first.train.images, i));
    let shared = 0;
    for (let i = 0; i < first.test.count; i++) if (trainKeys.has(key(first.test.images, i))) shared++;
    expect(shared).toBe(0);
  });

  it('writes a binary cache, reads it on the next load and gives identical arrays', async () => {
    const file = builtinCacheFile(dataDir, 'mnist');
    expect(fs.existsSync(file)).toBe(true);
    // One byte per pixel and label, plus a small header.
    const size = fs.statSync(file).size;
    expect(size).toBeGreaterThan(70000 * 785);
    expect(size).toBeLessThan(70000 * 785 + 4096);
    logLines.length = 0;
    const second = await loadBuiltinDataset('mnist', { dataDir, log });
    expect(messages()).toContain('dataset read from cache');
    expect(messages()).not.toContain('dataset built');
    expect(Buffer.from(second.train.images.buffer).equals(Buffer.from(first.train.images.buffer))).toBe(true);
    expect(Buffer.from(second.test.images.buffer).equals(Buffer.from(first.test.images.buffer))).toBe(true);
    expect(Array.from(second.train.labels)).toEqual(Array.from(first.train.labels));
    expect(second.provenance).toBe(first.provenance);
    expect(datasetHash(second)).toBe(datasetHash(first));
    expect(datasetHash(first)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rebuilds a corrupt cache instead of trusting it', async () => {
    const file = builtinCacheFile(dataDir, 'mnist');
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, fs.statSync(file).size - 20000);
    fs.closeSync(fd);
    logLines.length = 0;
    const rebuilt = await loadBuiltinDataset('mnist', { dataDir, log });
    expect(logLines.some((l) => /payload checksum mismatch/.test(l))).toBe(true);
    expect(messages()).toContain('dataset built');
    expect(datasetHash(rebuilt)).toBe(datasetHash(first));
    logLines.length = 0;
    await loadBuiltinDataset('mnist', { dataDir, log });
    expect(messages()).toContain('dataset read from cache');
  });

  it('refuses an unknown built-in name with the list of known ones', async () => {
    await expect(loadBuiltinDataset('imagenet', { dataDir })).rejects.toThrow(/unknown built-in dataset "imagenet"; built-in datasets are mnist, fashion-mnist, colored-mnist/);
  });
});
