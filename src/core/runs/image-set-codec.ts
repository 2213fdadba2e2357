import type { ImageSet } from '../data/image-set';

const MAGIC = 'CDIMGSET1';

/**
 * A self-describing binary form of an ImageSet (float32 pixels, int32 labels, optional contexts and
 * teacher logits), for storing synthetic sets as artifacts: magic, header length, JSON header, arrays.
 */
export function encodeImageSet(set: ImageSet): Buffer {
  const header = Buffer.from(
    JSON.stringify({ count: set.count, shape: set.shape, numClasses: set.numClasses, contexts: !!set.contexts, teacherLogits: !!set.teacherLogits }),
  );
  const parts: Buffer[] = [Buffer.from(MAGIC), uint32(header.length), header, bytesOf(set.images), bytesOf(set.labels)];
  if (set.contexts) parts.push(bytesOf(set.contexts));
  if (set.teacherLogits) parts.push(bytesOf(set.teacherLogits));
  return Buffer.concat(parts);
}

export function decodeImageSet(buffer: Buffer): ImageSet {
  if (buffer.subarray(0, MAGIC.length).toString() !== MAGIC) throw new Error('not an encoded image set (bad magic)');
  let offset = MAGIC.length;
  const headerLength = buffer.readUInt32LE(offset);
  offset += 4;
  const header = JSON.parse(buffer.subarray(offset, offset + headerLength).toString()) as {
    count: number;
    shape: [number, number, number];
    numClasses: number;
    contexts: boolean;
    teacherLogits: boolean;
  };
  offset += headerLength;
  const take = <T>(n: number, bytesPer: number, make: (b: ArrayBuffer) => T): T => {
    const bytes = n * bytesPer;
    if (offset + bytes > buffer.length) throw new Error('encoded image set is truncated');
    const copy = new ArrayBuffer(bytes);
    new Uint8Array(copy).set(buffer.subarray(offset, offset + bytes));
    offset += bytes;
    return make(copy);
  };
  const size = header.shape[0] * header.shape[1] * header.shape[2];
  const images = take(header.count * size, 4, (b) => new Float32Array(b));
  const labels = take(header.count, 4, (b) => new Int32Array(b));
  const contexts = header.contexts ? take(header.count, 4, (b) => new Int32Array(b)) : undefined;
  const teacherLogits = header.teacherLogits ? take(header.count * header.numClasses, 4, (b) => new Float32Array(b)) : undefined;
  return { images, labels, contexts, teacherLogits, count: header.count, shape: header.shape, numClasses: header.numClasses };
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function bytesOf(a: Float32Array | Int32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}
