import * as tf from '@tensorflow/tfjs';
import type { StageCheckpoint } from '../plugins/contracts';
import type { RandomState } from '../random';
import type { ParamOptimizer } from './optimizers';

const MAGIC = 'CDTRAIN1';

/** Where a training loop stands between two steps: enough to continue it exactly. */
export interface TrainerPosition {
  /** Steps completed. */
  step: number;
  /** Epoch and batch of the next step. */
  epoch: number;
  batch: number;
  /** Generator state when the epoch's order was drawn, and now. */
  epochRng: RandomState;
  rng: RandomState;
  losses: number[];
  epochLoss: number;
  epochCorrect: number;
  optimizerSteps: number;
}

interface Header extends TrainerPosition {
  variables: number[][];
  slots: number[][];
}

/**
 * Saves the position, every trained or tracked variable (weights, BatchNorm moving statistics) and the
 * optimizer's slots as one buffer: magic, header length, JSON header, float32 arrays.
 */
export async function saveTrainerCheckpoint(
  checkpoint: StageCheckpoint,
  position: TrainerPosition,
  variables: tf.Variable[],
  optimizer: ParamOptimizer,
): Promise<void> {
  const { slots } = optimizer.state();
  const tensors = [...variables, ...slots];
  const arrays: Buffer[] = [];
  for (const t of tensors) {
    const data = (await t.data()) as Float32Array;
    arrays.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
  const header: Header = { ...position, variables: variables.map((v) => v.shape), slots: slots.map((s) => s.shape) };
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  await checkpoint.save(Buffer.concat([Buffer.from(MAGIC), length, json, ...arrays]), position.step);
}

/**
 * Loads the stage's checkpoint, if there is one, into `variables` and `optimizer` and returns the
 * position to continue from. A checkpoint of a different model (shapes differ) is an error, not ignored.
 */
export async function loadTrainerCheckpoint(checkpoint: StageCheckpoint, variables: tf.Variable[], optimizer: ParamOptimizer): Promise<TrainerPosition | undefined> {
  const buffer = await checkpoint.load();
  if (!buffer) return undefined;
  if (buffer.subarray(0, MAGIC.length).toString() !== MAGIC) throw new Error('the stored checkpoint is not a trainer checkpoint (bad magic)');
  let offset = MAGIC.length;
  const headerLength = buffer.readUInt32LE(offset);
  offset += 4;
  const header = JSON.parse(buffer.subarray(offset, offset + headerLength).toString()) as Header;
  offset += headerLength;
  const read = (shape: number[]): Float32Array => {
    const n = shape.reduce((a, b) => a * b, 1);
    if (offset + n * 4 > buffer.length) throw new Error('the stored checkpoint is truncated');
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(buffer.subarray(offset, offset + n * 4));
    offset += n * 4;
    return out;
  };
  const sameShapes = (a: number[][], b: number[][]) => a.length === b.length && a.every((s, i) => s.join('x') === b[i].join('x'));
  const slotShapes = optimizer.state().slots.map((s) => s.shape);
  if (!sameShapes(header.variables, variables.map((v) => v.shape)) || !sameShapes(header.slots, slotShapes)) {
    throw new Error('the stored checkpoint belongs to a different model or optimizer (variable shapes differ)');
  }
  const values = header.variables.map(read);
  const slots = header.slots.map(read);
  variables.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(values[i], v.shape))));
  optimizer.restore(header.optimizerSteps, slots);
  const { variables: _v, slots: _s, ...position } = header;
  return position;
}
