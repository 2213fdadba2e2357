import * as tf from '@tensorflow/tfjs';
import type { StageCheckpoint } from '../plugins/contracts';
import type { RandomState } from '../random';
import type { ParamOptimizer } from './optimizers';
import { CheckpointFormatError, decodeFramed, encodeFramed, Float32Reader, float32Bytes } from '../checkpoints/framed-buffer';

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

/** Shapes of the saved variables and optimizer slots, next to the caller's own header fields. */
interface TensorShapes {
  variables: number[][];
  slots: number[][];
  optimizerSteps: number;
}

/**
 * Variables (weights and tracked statistics) and the optimizer's step count and slots as one framed
 * buffer (magic, JSON header with `fields` and the shapes, float32 arrays) followed by `trailer`.
 */
export async function encodeTrainingState(magic: string, fields: object, variables: tf.Variable[], optimizer: ParamOptimizer, trailer?: Buffer): Promise<Buffer> {
  const { steps, slots } = optimizer.state();
  const arrays: Buffer[] = [];
  for (const t of [...variables, ...slots]) arrays.push(float32Bytes((await t.data()) as Float32Array));
  const shapes: TensorShapes = { variables: variables.map((v) => v.shape), slots: slots.map((s) => s.shape), optimizerSteps: steps };
  return encodeFramed(magic, { ...fields, ...shapes }, trailer ? [...arrays, trailer] : arrays);
}

/**
 * Loads what `encodeTrainingState` wrote into `variables` and `optimizer`; returns the caller's header
 * fields and the trailer. A state of a different model (shapes differ) is an error, not ignored.
 */
export function restoreTrainingState<F extends object>(
  buffer: Buffer,
  magic: string,
  description: string,
  variables: tf.Variable[],
  optimizer: ParamOptimizer,
): { fields: F & { optimizerSteps: number }; trailer: Buffer } {
  const { header, body } = decodeFramed<F & TensorShapes>(buffer, magic, description);
  const sameShapes = (a: number[][], b: number[][]) => a.length === b.length && a.every((s, i) => s.join('x') === b[i].join('x'));
  const slotShapes = optimizer.state().slots.map((s) => s.shape);
  if (!sameShapes(header.variables, variables.map((v) => v.shape)) || !sameShapes(header.slots, slotShapes)) {
    throw new CheckpointFormatError(`${description} belongs to a different model or optimizer (variable shapes differ)`);
  }
  const reader = new Float32Reader(body, description);
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const values = header.variables.map((shape) => reader.next(size(shape)));
  const slots = header.slots.map((shape) => reader.next(size(shape)));
  variables.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(values[i], v.shape))));
  optimizer.restore(header.optimizerSteps, slots);
  const { variables: _v, slots: _s, ...fields } = header;
  return { fields: fields as unknown as F & { optimizerSteps: number }, trailer: reader.rest() };
}

/**
 * Saves the position, every trained or tracked variable (weights, BatchNorm moving statistics) and the
 * optimizer's slots as one buffer.
 */
export async function saveTrainerCheckpoint(
  checkpoint: StageCheckpoint,
  position: TrainerPosition,
  variables: tf.Variable[],
  optimizer: ParamOptimizer,
): Promise<void> {
  await checkpoint.save(await encodeTrainingState(MAGIC, position, variables, optimizer), position.step);
}

/**
 * Loads the stage's checkpoint, if there is one, into `variables` and `optimizer` and returns the
 * position to continue from. A checkpoint of a different model (shapes differ) is an error, not ignored.
 */
export async function loadTrainerCheckpoint(checkpoint: StageCheckpoint, variables: tf.Variable[], optimizer: ParamOptimizer): Promise<TrainerPosition | undefined> {
  const buffer = await checkpoint.load();
  if (!buffer) return undefined;
  return restoreTrainingState<TrainerPosition>(buffer, MAGIC, 'a trainer checkpoint', variables, optimizer).fields;
}
