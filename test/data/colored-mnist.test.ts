import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { builtinCacheFile, loadBuiltinDataset, loadBuiltinRaw } from '../../src/core/data/builtin';
import { COLORED_MNIST_COLORS, colourMnist } from '../../src/core/data/colored-mnist';
import { datasetHash } from '../../src/core/data/hash';
import type { ImageSet, LabelledDataset } from '../../src/core/data/image-set';

let dataDir: string;
let mnist: LabelledDataset;
let colored: LabelledDataset;
const logLines: string[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => logLines.push(line) });

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-colored-'));
  mnist = await loadBuiltinDataset('mnist', { dataDir });
  colored = await loadBuiltinDataset('colored-mnist', { dataDir, log });
});
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

/** counts[label][colour] */
function table(set: ImageSet): number[][] {
  const t = Array.from({ length: 10 }, () => new Array(10).fill(0));
  for (let i = 0; i < set.count; i++) t[set.labels[i]][set.contexts![i]]++;
  return t;
}

function agreement(set: ImageSet): number {
  let same = 0;
  for (let i = 0; i < set.count; i++) if (set.labels[i] === set.contexts![i]) same++;
  return same / set.count;
}

describe('Colored-MNIST', () => {
  it('colours MNIST digits: same splits and labels, RGB, ten named colours as contexts', () => {
    expect(colored.contextNames).toEqual(COLORED_MNIST_COLORS.map((c) => c.name));
    expect(new Set(COLORED_MNIST_COLORS.map((c) => c.rgb.join(','))).size).toBe(10);
    for (const split of ['train', 'test'] as const) {
      expect(colored[split].count).toBe(mnist[split].count);
      expect(colored[split].shape).toEqual([28, 28, 3]);
      expect(Array.from(colored[split].labels)).toEqual(Array.from(mnist[split].labels));
      // Each RGB channel is the grey level scaled by the colour's channel.
      for (let i = 0; i < 200; i++) {
        const rgb = COLORED_MNIST_COLORS[colored[split].contexts![i]].rgb;
        for (let p = 0; p < 784; p++) {
          const grey = (mnist[split].images[i * 784 + p] * 255 + 0.5) | 0;
          for (let k = 0; k < 3; k++) {
            const got = (colored[split].images[(i * 784 + p) * 3 + k] * 255 + 0.5) | 0;
            const want = Math.round((grey * rgb[k]) / 255);
            if (got !== want) throw new Error(`${split} image ${i} pixel ${p} channel ${k}: ${got} != ${want}`);
          }
        }
      }
    }
  });

  it('ties colour to label in training (about 0.9) and not in the test split (about 0.1)', () => {
    const train = agreement(colored.train);
    const test = agreement(colored.test);
    // 60,000 draws at p = 0.9: standard deviation 0.0012; 10,000 at p = 0.1: 0.003.
    expect(train).toBeGreaterThan(0.89);
    expect(train).toBeLessThan(0.91);
    expect(test).toBeGreaterThan(0.09);
    expect(test).toBeLessThan(0.11);
    expect(colored.provenance).toMatch(/probability 0\.9/);
    expect(colored.provenance).toMatch(/official split, 60,000 train \/ 10,000 test/);
    // Training digits off their colour take each of the other nine colours about equally often.
    const trainTable = table(colored.train);
    for (let label = 0; label < 10; label++) {
      const off = trainTable[label].reduce((a, b, c) => a + (c === label ? 0 : b), 0);
      for (let c = 0; c < 10; c++) if (c !== label) expect(trainTable[label][c]).toBeGreaterThan((off / 9) * 0.6);
    }
    // In the test split every (label, colour) pair is about equally frequent: colour is independent of the label.
    const testTable = table(colored.test);
    for (let label = 0; label < 10; label++) {
      const n = testTable[label].reduce((a, b) => a + b, 0);
      for (let c = 0; c < 10; c++) {
        expect(testTable[label][c]).toBeGreaterThan(n / 10 / 2);
        expect(testTable[label][c]).toBeLessThan((n / 10) * 1.5);
      }
    }
  });

  it('is deterministic for a seed, differs for another, and is cached under its parameters', async () => {
    // MNIST bytes come from the cache the first load wrote; the colouring is recomputed.
    const mnistRaw = loadBuiltinRaw('mnist', { dataDir });
    const rebuilt = colourMnist(mnistRaw, { seed: 0, trainCorrelation: 0.9 });
    expect(Array.from(rebuilt.train.contexts!)).toEqual(Array.from(colored.train.contexts!));
    expect(Array.from(rebuilt.test.contexts!)).toEqual(Array.from(colored.test.contexts!));
    const other = colourMnist(mnistRaw, { seed: 1 });
    let differ = 0;
    for (let i = 0; i < other.test.count; i++) if (other.test.contexts![i] !== colored.test.contexts![i]) differ++;
    expect(differ / other.test.count).toBeGreaterThan(0.8);

    expect(fs.existsSync(builtinCacheFile(dataDir, 'colored-mnist-corr0.9-seed0'))).toBe(true);
    logLines.length = 0;
    const cached = await loadBuiltinDataset('colored-mnist', { dataDir, log });
    expect(logLines.map((l) => JSON.parse(l).msg)).toContain('dataset read from cache');
    expect(datasetHash(cached)).toBe(datasetHash(colored));
    expect(Array.from(cached.train.contexts!.subarray(0, 1000))).toEqual(Array.from(colored.train.contexts!.subarray(0, 1000)));

    const weaker = loadBuiltinRaw('colored-mnist', { dataDir, trainCorrelation: 0.5 });
    expect(fs.existsSync(builtinCacheFile(dataDir, 'colored-mnist-corr0.5-seed0'))).toBe(true);
    let same = 0;
    for (let i = 0; i < weaker.train.count; i++) if (weaker.train.contexts![i] === weaker.train.labels[i]) same++;
    expect(same / weaker.train.count).toBeGreaterThan(0.48);
    expect(same / weaker.train.count).toBeLessThan(0.52);
    expect(() => loadBuiltinRaw('colored-mnist', { dataDir, trainCorrelation: 1.5 })).toThrow(/trainCorrelation must be in \[0, 1\]/);
  });
});
