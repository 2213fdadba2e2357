import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { DatasetFormatError, DatasetSourceError } from '../../src/core/data/errors';
import { encodeIdx, readIdx, readIdxDataset, readIdxHeader, writeIdx } from '../../src/core/data/idx';
import { toLabelledDataset } from '../../src/core/data/raw';
import { loadDataset, validateDatasetSource } from '../../src/core/data/catalog';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-idx-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function bytes(n: number, f: (i: number) => number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => f(i));
}

describe('IDX files', () => {
  it('encodes the header as the IDX format specifies', () => {
    const buf = encodeIdx(Uint8Array.from([7, 8, 9, 10, 11, 12]), [2, 3]);
    // magic 0x00000802 (ubyte, 2 dims), then dims big-endian, then data.
    expect(Array.from(buf)).toEqual([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 7, 8, 9, 10, 11, 12]);
  });

  it.each(['plain.idx', 'zipped.idx.gz'])('round-trips images and labels (%s)', (name) => {
    const images = bytes(5 * 4 * 3, (i) => (i * 37) % 256);
    const file = path.join(dir, `images-${name}`);
    writeIdx(file, images, [5, 4, 3]);
    const read = readIdx(file);
    expect(read.dims).toEqual([5, 4, 3]);
    expect(Array.from(read.data)).toEqual(Array.from(images));
    if (name.endsWith('.gz')) expect(zlib.gunzipSync(fs.readFileSync(file)).length).toBe(16 + 60);
    expect(readIdxHeader(file).dims).toEqual([5, 4, 3]);
  });

  it('reads a four-file data set into NHWC floats in [0, 1]', async () => {
    const f = (n: string) => path.join(dir, n);
    writeIdx(f('tr-img.gz'), bytes(6 * 2 * 2, (i) => i * 5), [6, 2, 2]);
    writeIdx(f('tr-lab.gz'), Uint8Array.from([0, 1, 2, 0, 1, 2]), [6]);
    writeIdx(f('te-img'), bytes(3 * 2 * 2, (i) => 255 - i), [3, 2, 2]);
    writeIdx(f('te-lab'), Uint8Array.from([2, 1, 0]), [3]);
    const source = { kind: 'idx' as const, trainImages: f('tr-img.gz'), trainLabels: f('tr-lab.gz'), testImages: f('te-img'), testLabels: f('te-lab') };
    expect(validateDatasetSource(source)).toMatchObject({ trainCount: 6, testCount: 3 });
    const ds = await loadDataset(source, { dataDir: dir });
    expect(ds.classNames).toEqual(['0', '1', '2']);
    expect(ds.train.shape).toEqual([2, 2, 1]);
    expect(ds.train.count).toBe(6);
    expect(ds.train.images[5]).toBeCloseTo(25 / 255, 6);
    expect(ds.test.images[0]).toBeCloseTo(1, 6);
    expect(Array.from(ds.test.labels)).toEqual([2, 1, 0]);
    expect(ds.train.numClasses).toBe(3);
  });

  it('rejects a bad magic number, naming the file', () => {
    const file = path.join(dir, 'bad-magic');
    const buf = encodeIdx(bytes(4, (i) => i), [4]);
    buf[0] = 1;
    fs.writeFileSync(file, buf);
    expect(() => readIdx(file)).toThrow(DatasetFormatError);
    expect(() => readIdx(file)).toThrow(/bad-magic: bad IDX magic number/);
  });

  it('rejects a non-byte element type', () => {
    const file = path.join(dir, 'float');
    const buf = encodeIdx(bytes(4, (i) => i), [4]);
    buf[2] = 0x0d;
    fs.writeFileSync(file, buf);
    expect(() => readIdx(file)).toThrow(/float32\) is not supported/);
  });

  it('rejects truncated data and truncated headers, plain and gzipped', () => {
    const full = encodeIdx(bytes(100, (i) => i), [10, 10]);
    const plain = path.join(dir, 'truncated');
    fs.writeFileSync(plain, full.subarray(0, full.length - 7));
    expect(() => readIdx(plain)).toThrow(/truncated: dimensions \[10, 10\] need 100 data bytes, file holds 93/);
    expect(() => readIdxHeader(plain)).toThrow(DatasetFormatError);
    const zipped = path.join(dir, 'truncated.gz');
    fs.writeFileSync(zipped, zlib.gzipSync(full.subarray(0, full.length - 7)));
    expect(() => readIdx(zipped)).toThrow(/truncated/);
    const header = path.join(dir, 'short-header');
    fs.writeFileSync(header, full.subarray(0, 9));
    expect(() => readIdx(header)).toThrow(/truncated IDX header/);
  });

  it('rejects a corrupt gzip file and a missing file with clear errors', () => {
    const file = path.join(dir, 'corrupt.gz');
    fs.writeFileSync(file, Buffer.from([0x1f, 0x8b, 1, 2, 3, 4, 5]));
    expect(() => readIdx(file)).toThrow(/corrupt.gz: not a valid gzip file/);
    expect(() => readIdx(path.join(dir, 'nope'))).toThrow(DatasetSourceError);
    expect(() => readIdx(path.join(dir, 'nope'))).toThrow(/does not exist/);
  });

  it('rejects label and image counts that disagree', () => {
    const f = (n: string) => path.join(dir, n);
    writeIdx(f('m-img'), bytes(4 * 4, () => 0), [4, 2, 2]);
    writeIdx(f('m-lab'), bytes(3, () => 0), [3]);
    const files = { trainImages: f('m-img'), trainLabels: f('m-lab'), testImages: f('m-img'), testLabels: f('m-lab') };
    expect(() => readIdxDataset(files)).toThrow(/m-lab: holds 3 labels but .*m-img holds 4 images/);
    expect(() => validateDatasetSource({ kind: 'idx', ...files })).toThrow(/holds 3 labels/);
    expect(() => toLabelledDataset(readIdxDataset({ ...files, trainLabels: f('m-img') }))).toThrow(/one dimension/);
  });
});
