import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeCache, encodeCache, readCache, writeCache } from '../../src/core/data/cache';
import type { RawDataset } from '../../src/core/data/raw';

function tiny(): RawDataset {
  return {
    name: 'tiny',
    classNames: ['a', 'b'],
    contextNames: ['x', 'y', 'z'],
    provenance: 'made in a test',
    train: { pixels: Uint8Array.from([0, 1, 2, 3, 4, 5, 250, 251]), labels: Int32Array.from([0, 1]), contexts: Int32Array.from([2, 0]), count: 2, shape: [2, 2, 1] },
    test: { pixels: Uint8Array.from([9, 8, 7, 6]), labels: Int32Array.from([1]), count: 1, shape: [2, 2, 1] },
  };
}

describe('binary dataset cache', () => {
  it('round-trips pixels, labels, contexts, names and provenance', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-cache-'));
    const file = path.join(dir, 'sub', 'tiny.cdset');
    writeCache(file, 'tiny:v1', tiny());
    const read = readCache(file, 'tiny:v1');
    if (!read.ok) throw new Error(read.reason);
    expect(read.raw).toEqual(tiny());
    expect(fs.readdirSync(path.dirname(file))).toEqual(['tiny.cdset']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reports a missing file, another key, a bad magic number, truncation and altered bytes', () => {
    expect(readCache(path.join(os.tmpdir(), 'condense-no-such.cdset'), 'k')).toEqual({ ok: false, reason: 'no cache file' });
    const bytes = encodeCache('tiny:v1', tiny());
    expect(decodeCache(bytes, 'tiny:v2')).toMatchObject({ ok: false, reason: expect.stringMatching(/cached content is tiny:v1, expected tiny:v2/) });
    const badMagic = Buffer.from(bytes);
    badMagic[0] = 0x41;
    expect(decodeCache(badMagic, 'tiny:v1')).toMatchObject({ ok: false, reason: expect.stringMatching(/bad magic/) });
    expect(decodeCache(bytes.subarray(0, bytes.length - 1), 'tiny:v1')).toMatchObject({ ok: false, reason: expect.stringMatching(/payload is 16 bytes, header describes 17/) });
    const altered = Buffer.from(bytes);
    altered[altered.length - 2] ^= 1;
    expect(decodeCache(altered, 'tiny:v1')).toMatchObject({ ok: false, reason: 'payload checksum mismatch' });
  });

  it('refuses to store labels that do not fit in a byte', () => {
    const raw = tiny();
    raw.train.labels[0] = 300;
    expect(() => encodeCache('k', raw)).toThrow(/cannot cache label 300/);
  });
});
