import type * as tf from '@tensorflow/tfjs';
import { CheckpointFormatError, decodeFramed, encodeFramed, Float32Reader } from '../../core/checkpoints/framed-buffer';
import { modelWeightArrays, restoreModelWeights } from '../../core/checkpoints/model-weights';
import type { PruningOutput, StageCheckpoint } from '../../core/plugins/contracts';

const MAGIC = 'CNDMAG01';
const DESCRIPTION = 'a magnitude-pruning checkpoint';

/** Where gradual pruning stands after a completed round (prune + fine-tune). */
export interface PruningRound {
  /** Completed rounds (1-based count). */
  round: number;
  steps: number;
  masks: Record<string, Uint8Array>;
  transformLog: PruningOutput['transformLog'];
  prunable: number;
  kept: number;
  threshold: number;
  fineTuneLoss: number;
}

interface Header extends Omit<PruningRound, 'masks'> {
  weights: number[][];
  masks: Array<{ name: string; length: number }>;
}

/** Saves the model's weights (all of them: BatchNorm statistics too) and the round's masks and results. */
export async function saveRound(checkpoint: StageCheckpoint, model: tf.LayersModel, state: PruningRound, reportedStep: number): Promise<void> {
  const { shapes, arrays } = await modelWeightArrays([model]);
  const masks = Object.entries(state.masks);
  const header: Header = { ...state, weights: shapes, masks: masks.map(([name, m]) => ({ name, length: m.length })) };
  await checkpoint.save(encodeFramed(MAGIC, header, [...arrays, ...masks.map(([, m]) => Buffer.from(m))]), reportedStep);
}

/**
 * Loads the last completed round into `model` and returns it; undefined when there is no checkpoint.
 * A checkpoint of another model or schedule is an error, not ignored.
 */
export async function loadRound(checkpoint: StageCheckpoint, model: tf.LayersModel, steps: number): Promise<PruningRound | undefined> {
  const buffer = await checkpoint.load();
  if (!buffer) return undefined;
  const { header, body } = decodeFramed<Header>(buffer, MAGIC, DESCRIPTION);
  if (header.steps !== steps) throw new CheckpointFormatError(`${DESCRIPTION} belongs to a schedule of ${header.steps} steps, not ${steps}`);
  const reader = new Float32Reader(body, DESCRIPTION);
  restoreModelWeights([model], header.weights, reader, DESCRIPTION);
  let rest = reader.rest();
  const masks: Record<string, Uint8Array> = {};
  for (const { name, length } of header.masks) {
    if (rest.length < length) throw new CheckpointFormatError(`${DESCRIPTION} is truncated`);
    masks[name] = Uint8Array.from(rest.subarray(0, length));
    rest = rest.subarray(length);
  }
  const { weights: _w, masks: _m, ...fields } = header;
  return { ...fields, masks };
}
