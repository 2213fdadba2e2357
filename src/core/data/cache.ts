import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { RawDataset, RawImageSet } from './raw';

/**
 * The compact binary cache of a data set (`.cdset`):
 *   8 bytes magic "CDSET\0\0\n", uint32 LE header length, header JSON (UTF-8),
 *   then for train and for test: pixels (uint8, N×H×W×C), labels (uint8, N), contexts (uint8, N, when present).
 * The header records the payload's size and SHA-256, so a truncated or altered file is detected.
 */
export const CACHE_FORMAT_VERSION = 1;
const MAGIC = Buffer.from('CDSET\0\0\n', 'latin1');

interface SplitHeader {
  count: number;
  shape: [number, number, number];
  hasContexts: boolean;
}

export interface CacheHeader {
  formatVersion: number;
  /** What was cached, with every parameter that changes the content (source, seed...). */
  key: string;
  name: string;
  classNames: string[];
  contextNames?: string[];
  provenance: string;
  train: SplitHeader;
  test: SplitHeader;
  payloadBytes: number;
  payloadSha256: string;
}

function splitSections(set: RawImageSet): Uint8Array[] {
  const sections: Uint8Array[] = [set.pixels, Uint8Array.from(set.labels)];
  if (set.contexts) sections.push(Uint8Array.from(set.contexts));
  return sections;
}

function checkFitsInBytes(values: Int32Array | undefined, what: string): void {
  if (!values) return;
  for (const v of values) if (v < 0 || v > 255) throw new RangeError(`cannot cache ${what} ${v}: the cache stores labels and contexts as bytes`);
}

export function encodeCache(key: string, raw: RawDataset): Buffer {
  for (const s of [raw.train, raw.test]) {
    checkFitsInBytes(s.labels, 'label');
    checkFitsInBytes(s.contexts, 'context');
  }
  const sections = [...splitSections(raw.train), ...splitSections(raw.test)];
  const payload = Buffer.concat(sections.map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength)));
  const splitHeader = (s: RawImageSet): SplitHeader => ({ count: s.count, shape: s.shape, hasContexts: !!s.contexts });
  const header: CacheHeader = {
    formatVersion: CACHE_FORMAT_VERSION,
    key,
    name: raw.name,
    classNames: raw.classNames,
    contextNames: raw.contextNames,
    provenance: raw.provenance,
    train: splitHeader(raw.train),
    test: splitHeader(raw.test),
    payloadBytes: payload.length,
    payloadSha256: crypto.createHash('sha256').update(payload).digest('hex'),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(headerBytes.length, 0);
  return Buffer.concat([MAGIC, length, headerBytes, payload]);
}

/** Writes atomically (temporary file, then rename), so a crash never leaves a half-written cache under the name. */
export function writeCache(file: string, key: string, raw: RawDataset): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, encodeCache(key, raw));
  fs.renameSync(tmp, file);
}

export type CacheReadResult = { ok: true; raw: RawDataset; header: CacheHeader } | { ok: false; reason: string };

function splitBytes(h: SplitHeader): number {
  const n = h.count;
  return n * h.shape[0] * h.shape[1] * h.shape[2] + n + (h.hasContexts ? n : 0);
}

export function decodeCache(bytes: Buffer, expectedKey: string): CacheReadResult {
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return { ok: false, reason: 'not a Condense dataset cache (bad magic)' };
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const payloadStart = MAGIC.length + 4 + headerLength;
  if (payloadStart > bytes.length) return { ok: false, reason: 'truncated header' };
  let header: CacheHeader;
  try {
    header = JSON.parse(bytes.subarray(MAGIC.length + 4, payloadStart).toString('utf8')) as CacheHeader;
  } catch {
    return { ok: false, reason: 'header is not valid JSON' };
  }
  if (header.formatVersion !== CACHE_FORMAT_VERSION) return { ok: false, reason: `format version ${header.formatVersion}, expected ${CACHE_FORMAT_VERSION}` };
  if (header.key !== expectedKey) return { ok: false, reason: `cached content is ${header.key}, expected ${expectedKey}` };
  const payload = bytes.subarray(payloadStart);
  const expectedBytes = splitBytes(header.train) + splitBytes(header.test);
  if (payload.length !== header.payloadBytes || payload.length !== expectedBytes) {
    return { ok: false, reason: `payload is ${payload.length} bytes, header describes ${expectedBytes}` };
  }
  if (crypto.createHash('sha256').update(payload).digest('hex') !== header.payloadSha256) {
    return { ok: false, reason: 'payload checksum mismatch' };
  }
  let offset = 0;
  const take = (n: number) => {
    const part = payload.subarray(offset, offset + n);
    offset += n;
    return part;
  };
  const readSplit = (h: SplitHeader): RawImageSet => {
    const pixels = new Uint8Array(take(h.count * h.shape[0] * h.shape[1] * h.shape[2]));
    const labels = Int32Array.from(take(h.count));
    const contexts = h.hasContexts ? Int32Array.from(take(h.count)) : undefined;
    return { pixels, labels, contexts, count: h.count, shape: h.shape };
  };
  const train = readSplit(header.train);
  const test = readSplit(header.test);
  return {
    ok: true,
    header,
    raw: { name: header.name, classNames: header.classNames, contextNames: header.contextNames, provenance: header.provenance, train, test },
  };
}

/** Reads a cache file; `{ ok: false }` with the reason when it is missing, stale or corrupt. */
export function readCache(file: string, expectedKey: string): CacheReadResult {
  if (!fs.existsSync(file)) return { ok: false, reason: 'no cache file' };
  return decodeCache(fs.readFileSync(file), expectedKey);
}
