import type { StageCheckpoint } from '../plugins/contracts';

const MAGIC = 'CDSYNTH1';

/** Where a batch-by-batch synthesis stands after its last finished batch. */
export interface SynthesisState {
  batchesDone: number;
  /** Optimisation iterations done over all finished batches (the progress step). */
  iterationsDone: number;
  /** Every image finished so far, NHWC, in batch order. */
  images: Float32Array;
  /** Per-batch losses (or any per-batch series) kept for the stage's metrics. */
  lossHistory?: number[];
  /** Seconds spent making the finished batches (for images per second across restarts). */
  seconds?: number;
  /** Plugin-specific state (for example an ADI student's weights and optimizer slots). */
  extra?: Buffer;
}

interface Header {
  batchesDone: number;
  iterationsDone: number;
  lossHistory?: number[];
  seconds?: number;
  imageValues: number;
  extraBytes: number;
}

export class SynthesisCheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SynthesisCheckpointError';
  }
}

/** Serialises a state: magic, header length (uint32 LE), JSON header, float32 images, extra bytes. */
export function encodeSynthesisState(state: SynthesisState): Buffer {
  const header: Header = {
    batchesDone: state.batchesDone,
    iterationsDone: state.iterationsDone,
    lossHistory: state.lossHistory,
    seconds: state.seconds,
    imageValues: state.images.length,
    extraBytes: state.extra?.length ?? 0,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  const images = Buffer.from(state.images.buffer, state.images.byteOffset, state.images.byteLength);
  return Buffer.concat([Buffer.from(MAGIC, 'ascii'), length, json, images, state.extra ?? Buffer.alloc(0)]);
}

export function decodeSynthesisState(buffer: Buffer): SynthesisState {
  if (buffer.length < MAGIC.length + 4 || buffer.toString('ascii', 0, MAGIC.length) !== MAGIC) {
    throw new SynthesisCheckpointError('not a synthesis checkpoint (bad magic)');
  }
  const jsonLength = buffer.readUInt32LE(MAGIC.length);
  const jsonStart = MAGIC.length + 4;
  const header = JSON.parse(buffer.toString('utf8', jsonStart, jsonStart + jsonLength)) as Header;
  const imagesStart = jsonStart + jsonLength;
  const imagesEnd = imagesStart + header.imageValues * 4;
  if (buffer.length !== imagesEnd + header.extraBytes) {
    throw new SynthesisCheckpointError(`synthesis checkpoint is ${buffer.length} bytes; its header describes ${imagesEnd + header.extraBytes}`);
  }
  // Copy: a Float32Array view needs 4-byte alignment, which a Buffer slice does not promise.
  const images = new Float32Array(header.imageValues);
  Buffer.from(images.buffer).set(buffer.subarray(imagesStart, imagesEnd));
  return {
    batchesDone: header.batchesDone,
    iterationsDone: header.iterationsDone,
    lossHistory: header.lossHistory,
    seconds: header.seconds,
    images,
    extra: header.extraBytes > 0 ? Buffer.from(buffer.subarray(imagesEnd)) : undefined,
  };
}

/** The state a previous attempt of this stage saved, or undefined (no checkpoint slot, or nothing saved). */
export async function loadSynthesisState(checkpoint: StageCheckpoint | undefined): Promise<SynthesisState | undefined> {
  const saved = await checkpoint?.load();
  return saved === undefined ? undefined : decodeSynthesisState(saved);
}

/** Stores `state`, taken after `step` completed iterations, replacing the stage's earlier checkpoint. */
export async function saveSynthesisState(checkpoint: StageCheckpoint, state: SynthesisState, step: number): Promise<void> {
  await checkpoint.save(encodeSynthesisState(state), step);
}
