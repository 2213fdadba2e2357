/**
 * The layout every Condense checkpoint buffer shares: an 8-byte ASCII magic naming the format, the
 * JSON header's length (uint32 LE), the JSON header, then the body (raw arrays, nested buffers).
 */

/** A buffer that is not of the expected format, or is cut short. */
export class CheckpointFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointFormatError';
  }
}

export function encodeFramed(magic: string, header: unknown, body: readonly Buffer[] = []): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  return Buffer.concat([Buffer.from(magic, 'ascii'), length, json, ...body]);
}

/** The header and body of a framed buffer; `description` names the format in the error ("a trainer checkpoint"). */
export function decodeFramed<H>(buffer: Buffer, magic: string, description: string): { header: H; body: Buffer } {
  if (buffer.length < magic.length + 4 || buffer.toString('ascii', 0, magic.length) !== magic) {
    throw new CheckpointFormatError(`not ${description} (bad magic)`);
  }
  const jsonLength = buffer.readUInt32LE(magic.length);
  const jsonStart = magic.length + 4;
  if (jsonStart + jsonLength > buffer.length) throw new CheckpointFormatError(`${description} is truncated inside its header`);
  const header = JSON.parse(buffer.toString('utf8', jsonStart, jsonStart + jsonLength)) as H;
  return { header, body: buffer.subarray(jsonStart + jsonLength) };
}

/**
 * Reads consecutive float32 arrays from a body. Copies: a Float32Array view needs 4-byte alignment,
 * which a Buffer slice does not promise.
 */
export class Float32Reader {
  private offset = 0;

  constructor(
    private readonly body: Buffer,
    private readonly description: string,
  ) {}

  next(values: number): Float32Array {
    const end = this.offset + values * 4;
    if (end > this.body.length) throw new CheckpointFormatError(`${this.description} is truncated`);
    const out = new Float32Array(values);
    new Uint8Array(out.buffer).set(this.body.subarray(this.offset, end));
    this.offset = end;
    return out;
  }

  /** What follows the arrays read so far. */
  rest(): Buffer {
    return this.body.subarray(this.offset);
  }
}

/** The bytes of a float32 array, without copying. */
export function float32Bytes(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}
