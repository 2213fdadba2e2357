import * as tf from '@tensorflow/tfjs';
import { CheckpointFormatError, Float32Reader, float32Bytes } from './framed-buffer';

/**
 * Every weight of some models (BatchNorm moving statistics included), for a framed checkpoint: the
 * shapes go in its header, the arrays in its body.
 */
export async function modelWeightArrays(models: tf.LayersModel[]): Promise<{ shapes: number[][]; arrays: Buffer[] }> {
  const weights = models.flatMap((m) => m.weights);
  const arrays: Buffer[] = [];
  for (const w of weights) arrays.push(float32Bytes((await w.read().data()) as Float32Array));
  return { shapes: weights.map((w) => w.shape as number[]), arrays };
}

/**
 * Writes what modelWeightArrays saved (read from `reader`) back into `models`. Weights of other
 * shapes are refused: `description` names the checkpoint in the error.
 */
export function restoreModelWeights(models: tf.LayersModel[], shapes: number[][], reader: Float32Reader, description: string): void {
  const weights = models.flatMap((m) => m.weights);
  if (shapes.length !== weights.length || shapes.some((s, i) => s.join('x') !== (weights[i].shape as number[]).join('x'))) {
    throw new CheckpointFormatError(`${description} belongs to a different model (weight shapes differ)`);
  }
  const values = shapes.map((shape) => reader.next(shape.reduce((a, b) => a * b, 1)));
  weights.forEach((w, i) =>
    tf.tidy(() => {
      w.write(tf.tensor(values[i], shapes[i]));
    }),
  );
}
