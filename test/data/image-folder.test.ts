import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { readImageFolder } from '../../src/core/data/image-folder';
import { loadDataset, validateDatasetSource } from '../../src/core/data/catalog';
import { DatasetFormatError, DatasetSourceError } from '../../src/core/data/errors';

type Rgb = (x: number, y: number) => [number, number, number];

function rgba(width: number, height: number, colour: Rgb): Buffer {
  const data = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const [r, g, b] = colour(x, y);
      data.set([r, g, b, 255], (y * width + x) * 4);
    }
  return data;
}

function writePng(file: string, width: number, height: number, colour: Rgb): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const png = new PNG({ width, height });
  rgba(width, height, colour).copy(png.data);
  fs.writeFileSync(file, PNG.sync.write(png));
}

function writeJpeg(file: string, width: number, height: number, colour: Rgb): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, jpeg.encode({ width, height, data: rgba(width, height, colour) }, 100).data);
}

const greyPattern = (k: number): Rgb => (x, y) => {
  const v = (k * 40 + x * 10 + y) % 256;
  return [v, v, v];
};

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-folder-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('class-per-folder images', () => {
  it('reads train/ and test/ folders of grey PNGs as one channel, classes sorted', async () => {
    const dir = path.join(root, 'presplit');
    writePng(path.join(dir, 'train', 'zebra', 'a.png'), 6, 4, greyPattern(0));
    writePng(path.join(dir, 'train', 'zebra', 'b.png'), 6, 4, greyPattern(1));
    writePng(path.join(dir, 'train', 'ant', 'a.png'), 6, 4, greyPattern(2));
    writePng(path.join(dir, 'test', 'ant', 'x.png'), 6, 4, greyPattern(3));
    fs.writeFileSync(path.join(dir, 'train', 'ant', 'notes.txt'), 'not an image');
    const ds = await loadDataset({ kind: 'image-folder', dir }, { dataDir: root });
    expect(ds.classNames).toEqual(['ant', 'zebra']);
    expect(ds.train.shape).toEqual([4, 6, 1]);
    expect(ds.train.count).toBe(3);
    expect(ds.test.count).toBe(1);
    expect(Array.from(ds.train.labels)).toEqual([0, 1, 1]);
    // train image 0 is ant/a.png (pattern 2): pixel (x=5, y=3).
    expect(ds.train.images[3 * 6 + 5]).toBeCloseTo(((2 * 40 + 5 * 10 + 3) % 256) / 255, 6);
    expect(ds.test.images[0]).toBeCloseTo(120 / 255, 6);
    expect(ds.provenance).toMatch(/split given by its train\/ and test\/ folders/);
    expect(validateDatasetSource({ kind: 'image-folder', dir })).toMatchObject({ classNames: ['ant', 'zebra'], trainCount: 3, testCount: 1 });

    const forced = readImageFolder(dir, { channels: 3 });
    expect(forced.train.shape).toEqual([4, 6, 3]);
    expect(Array.from(forced.train.pixels.subarray(0, 3))).toEqual([80, 80, 80]);
  });

  it('splits a flat class folder of PNGs and JPEGs 80/20 per class with a seed, keeping colour', () => {
    const dir = path.join(root, 'flat');
    const red: Rgb = () => [250, 10, 10];
    const blue: Rgb = () => [10, 10, 250];
    for (let i = 0; i < 5; i++) {
      writePng(path.join(dir, 'red', `r${i}.png`), 8, 8, red);
      writeJpeg(path.join(dir, 'blue', `b${i}.jpg`), 8, 8, blue);
    }
    const a = readImageFolder(dir, { seed: 3 });
    const b = readImageFolder(dir, { seed: 3 });
    expect(a.classNames).toEqual(['blue', 'red']);
    expect(a.train.count).toBe(8);
    expect(a.test.count).toBe(2);
    expect(Array.from(a.test.labels).sort()).toEqual([0, 1]);
    expect(a.train.shape).toEqual([8, 8, 3]);
    expect(a.provenance).toMatch(/seeded split \(seed 3\): 20% of each class held out/);
    expect(Buffer.from(a.train.pixels).equals(Buffer.from(b.train.pixels))).toBe(true);
    const blueImage = Array.from(a.train.labels).indexOf(0);
    const px = a.train.pixels.subarray(blueImage * 192, blueImage * 192 + 3);
    // JPEG is lossy; a flat colour at quality 100 comes back within a few levels.
    expect(Math.abs(px[0] - 10)).toBeLessThanOrEqual(4);
    expect(Math.abs(px[2] - 250)).toBeLessThanOrEqual(4);
    const redImage = Array.from(a.train.labels).indexOf(1);
    expect(Array.from(a.train.pixels.subarray(redImage * 192, redImage * 192 + 3))).toEqual([250, 10, 10]);

    const grey = readImageFolder(dir, { channels: 1, seed: 3 });
    expect(grey.train.shape).toEqual([8, 8, 1]);
    expect(grey.train.pixels[redImage * 64]).toBe(Math.round(0.299 * 250 + 0.587 * 10 + 0.114 * 10));
  });

  it('says what is wrong: missing path, no class folders, empty class, unreadable image, mixed sizes', () => {
    expect(() => readImageFolder(path.join(root, 'absent'))).toThrow(DatasetSourceError);
    expect(() => readImageFolder(path.join(root, 'absent'))).toThrow(/does not exist/);
    expect(() => validateDatasetSource({ kind: 'image-folder', dir: path.join(root, 'absent') })).toThrow(/does not exist/);

    const noClasses = path.join(root, 'no-classes');
    fs.mkdirSync(noClasses);
    fs.writeFileSync(path.join(noClasses, 'loose.png'), 'x');
    expect(() => readImageFolder(noClasses)).toThrow(/has no class folders/);

    const emptyClass = path.join(root, 'empty-class');
    writePng(path.join(emptyClass, 'a', '1.png'), 4, 4, greyPattern(0));
    fs.mkdirSync(path.join(emptyClass, 'b'));
    expect(() => readImageFolder(emptyClass)).toThrow(/class folder .*b holds no .png or .jpg images/);

    const broken = path.join(root, 'broken');
    writePng(path.join(broken, 'a', '1.png'), 4, 4, greyPattern(0));
    writePng(path.join(broken, 'a', '2.png'), 4, 4, greyPattern(1));
    fs.writeFileSync(path.join(broken, 'a', '3.png'), 'this is not a png');
    expect(() => readImageFolder(broken)).toThrow(DatasetFormatError);
    expect(() => readImageFolder(broken)).toThrow(/3\.png: cannot decode PNG image/);

    const mixed = path.join(root, 'mixed');
    writePng(path.join(mixed, 'a', '1.png'), 4, 4, greyPattern(0));
    writePng(path.join(mixed, 'a', '2.png'), 5, 4, greyPattern(1));
    expect(() => readImageFolder(mixed)).toThrow(/image is 5x4 but the others are 4x4/);
  });
});
