import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { DatasetFormatError, DatasetSourceError } from './errors';
import type { RawDataset, RawImageSet } from './raw';

/** An IDX array of unsigned bytes (the only element type MNIST-style files use). */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const IDX_UBYTE = 0x08;
const IDX_TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

function isGzip(file: string, bytes: Uint8Array): boolean {
  return file.endsWith('.gz') || (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b);
}

function readFileOrThrow(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DatasetSourceError(`IDX file ${file} does not exist`);
    if (code === 'EISDIR') throw new DatasetSourceError(`IDX file ${file} is a directory, not a file`);
    throw new DatasetSourceError(`cannot read IDX file ${file}: ${(e as Error).message}`);
  }
}

/** Reads the magic number and dimensions; `bytes` may be only the start of the file. */
function parseIdxHeader(bytes: Uint8Array, file: string): { dims: number[]; headerBytes: number } {
  if (bytes.length < 4) throw new DatasetFormatError(file, `too short for an IDX header (${bytes.length} bytes)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DatasetFormatError(file, `bad IDX magic number: first two bytes must be 0, found ${bytes[0]}, ${bytes[1]}`);
  }
  const type = bytes[2];
  if (type !== IDX_UBYTE) {
    const name = IDX_TYPE_NAMES[type] ?? 'unknown';
    throw new DatasetFormatError(file, `IDX element type 0x${type.toString(16).padStart(2, '0')} (${name}) is not supported; only unsigned byte (0x08)`);
  }
  const ndims = bytes[3];
  if (ndims < 1) throw new DatasetFormatError(file, 'IDX header declares 0 dimensions');
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) throw new DatasetFormatError(file, `truncated IDX header: ${ndims} dimensions need ${headerBytes} bytes, file has ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  return { dims, headerBytes };
}

/** Parses IDX bytes (already gunzipped). `file` names the source in errors. */
export function parseIdx(bytes: Uint8Array, file: string): IdxArray {
  const { dims, headerBytes } = parseIdxHeader(bytes, file);
  const expected = dims.reduce((a, b) => a * b, 1);
  const actual = bytes.length - headerBytes;
  if (actual < expected) {
    throw new DatasetFormatError(file, `truncated: dimensions [${dims.join(', ')}] need ${expected} data bytes, file holds ${actual}`);
  }
  if (actual > expected) {
    throw new DatasetFormatError(file, `${actual - expected} unexpected bytes after the data of dimensions [${dims.join(', ')}]`);
  }
  return { dims, data: bytes.slice(headerBytes) };
}

function gunzip(bytes: Uint8Array, file: string): Buffer {
  try {
    return zlib.gunzipSync(bytes);
  } catch (e) {
    throw new DatasetFormatError(file, `not a valid gzip file (${(e as Error).message})`);
  }
}

/** Reads an IDX file of unsigned bytes, gunzipping it when it is gzipped (`.gz` or gzip magic). */
export function readIdx(file: string): IdxArray {
  const bytes = readFileOrThrow(file);
  return parseIdx(isGzip(file, bytes) ? gunzip(bytes, file) : bytes, file);
}

/**
 * Reads only the header of an IDX file (for validation without loading the data) and checks,
 * for plain files, that the size matches.
 */
export function readIdxHeader(file: string): { dims: number[] } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DatasetSourceError(`IDX file ${file} does not exist`);
    throw new DatasetSourceError(`cannot read IDX file ${file}: ${(e as Error).message}`);
  }
  try {
    if (fs.fstatSync(fd).isDirectory()) throw new DatasetSourceError(`IDX file ${file} is a directory, not a file`);
    const size = fs.fstatSync(fd).size;
    const start = Buffer.alloc(Math.min(size, 65536));
    fs.readSync(fd, start, 0, start.length, 0);
    if (isGzip(file, start)) {
      let head: Buffer;
      try {
        head = zlib.gunzipSync(start, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      } catch (e) {
        throw new DatasetFormatError(file, `not a valid gzip file (${(e as Error).message})`);
      }
      return { dims: parseIdxHeader(head, file).dims };
    }
    const { dims, headerBytes } = parseIdxHeader(start, file);
    const expected = headerBytes + dims.reduce((a, b) => a * b, 1);
    if (size !== expected) {
      throw new DatasetFormatError(file, `size ${size} bytes does not match dimensions [${dims.join(', ')}] (expected ${expected})`);
    }
    return { dims };
  } finally {
    fs.closeSync(fd);
  }
}

/** Encodes unsigned bytes as IDX. */
export function encodeIdx(data: Uint8Array, dims: number[]): Buffer {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) throw new RangeError(`IDX data has ${data.length} bytes; dimensions [${dims.join(', ')}] need ${expected}`);
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = IDX_UBYTE;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** Writes an IDX file, gzipped when the name ends in `.gz`. */
export function writeIdx(file: string, data: Uint8Array, dims: number[]): void {
  const encoded = encodeIdx(data, dims);
  fs.writeFileSync(file, file.endsWith('.gz') ? zlib.gzipSync(encoded) : encoded);
}

/** Images [N, H, W] (grey) or [N, H, W, C] from an IDX file. */
export function readIdxImages(file: string): RawImageSetWithoutLabels {
  const { dims, data } = readIdx(file);
  if (dims.length !== 3 && dims.length !== 4) {
    throw new DatasetFormatError(file, `an image file must have dimensions [N, height, width] or [N, height, width, channels]; found [${dims.join(', ')}]`);
  }
  const [count, height, width] = dims;
  const channels = dims.length === 4 ? dims[3] : 1;
  if (height === 0 || width === 0 || channels === 0) throw new DatasetFormatError(file, `image size [${dims.slice(1).join(', ')}] is empty`);
  return { pixels: data, count, shape: [height, width, channels] };
}

export type RawImageSetWithoutLabels = Omit<RawImageSet, 'labels' | 'contexts'>;

/** Labels [N] from an IDX file. */
export function readIdxLabels(file: string): Int32Array {
  const { dims, data } = readIdx(file);
  if (dims.length !== 1) throw new DatasetFormatError(file, `a label file must have one dimension [N]; found [${dims.join(', ')}]`);
  return Int32Array.from(data);
}

export interface IdxFiles {
  trainImages: string;
  trainLabels: string;
  testImages: string;
  testLabels: string;
}

export interface IdxDatasetOptions {
  name?: string;
  /** Names of the classes; defaults to '0', '1', ... up to the largest label. */
  classNames?: string[];
  provenance?: string;
}

function pairSplit(imagesFile: string, labelsFile: string): RawImageSet {
  const images = readIdxImages(imagesFile);
  const labels = readIdxLabels(labelsFile);
  if (labels.length !== images.count) {
    throw new DatasetFormatError(labelsFile, `holds ${labels.length} labels but ${imagesFile} holds ${images.count} images`);
  }
  return { ...images, labels };
}

/** A dataset from four IDX files (MNIST layout). */
export function readIdxDataset(files: IdxFiles, options: IdxDatasetOptions = {}): RawDataset {
  const train = pairSplit(files.trainImages, files.trainLabels);
  const test = pairSplit(files.testImages, files.testLabels);
  if (train.shape.join('x') !== test.shape.join('x')) {
    throw new DatasetFormatError(files.testImages, `images are ${test.shape.join('x')} but the training images (${files.trainImages}) are ${train.shape.join('x')}`);
  }
  let maxLabel = -1;
  for (const [set, file] of [[train, files.trainLabels], [test, files.testLabels]] as const) {
    for (const l of set.labels) maxLabel = Math.max(maxLabel, l);
    if (options.classNames) {
      const bad = set.labels.findIndex((l) => l >= options.classNames!.length);
      if (bad >= 0) throw new DatasetFormatError(file, `label ${set.labels[bad]} at index ${bad} is outside the ${options.classNames.length} classes`);
    }
  }
  const classNames = options.classNames ?? Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  return {
    name: options.name ?? path.basename(files.trainImages).replace(/(\.gz)?$/, ''),
    classNames,
    provenance: options.provenance ?? `IDX files: train ${files.trainImages} + ${files.trainLabels}, test ${files.testImages} + ${files.testLabels}`,
    train,
    test,
  };
}
