import { decodeFramed, encodeFramed, Float32Reader, float32Bytes } from '../checkpoints/framed-buffer';
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

/** Serialises a state: framed header, float32 images, extra bytes. */
export function encodeSynthesisState(state: SynthesisState): Buffer {
  const header: Header = {
    batchesDone: state.batchesDone,
    iterationsDone: state.iterationsDone,
    lossHistory: state.lossHistory,
    seconds: state.seconds,
    imageValues: state.images.length,
    extraBytes: state.extra?.length ?? 0,
  };
  return encodeFramed(MAGIC, header, [float32Bytes(state.images), state.extra ?? Buffer.alloc(0)]);
}

export function decodeSynthesisState(buffer: Buffer): SynthesisState {
  const { header, body } = decodeFramed<Header>(buffer, MAGIC, 'a synthesis checkpoint');
  if (body.length !== header.imageValues * 4 + header.extraBytes) {
    throw new SynthesisCheckpointError(`synthesis checkpoint body is ${body.length} bytes; its header describes ${header.imageValues * 4 + header.extraBytes}`);
  }
  const reader = new Float32Reader(body, 'a synthesis checkpoint');
  const images = reader.next(header.imageValues);
  return {
    batchesDone: header.batchesDone,
    iterationsDone: header.iterationsDone,
    lossHistory: header.lossHistory,
    seconds: header.seconds,
    images,
    extra: header.extraBytes > 0 ? Buffer.from(reader.rest()) : undefined,
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
