import * as tf from '@tensorflow/tfjs';
import { imageSize, type ImageSet } from '../data/image-set';
import { yieldToEventLoop } from '../event-loop';
import { throwIfAborted } from '../plugins/contracts';

/**
 * Runs `model` in inference mode over every image, `batchSize` at a time (checking `signal` and yielding
 * to the event loop between batches), and returns its outputs flattened per image, row-major [count × width].
 */
export async function predictRows(model: tf.LayersModel, set: Pick<ImageSet, 'images' | 'count' | 'shape'>, batchSize: number, signal: AbortSignal): Promise<{ rows: Float32Array; width: number }> {
  const size = imageSize(set);
  let rows: Float32Array | undefined;
  let width = 0;
  for (let start = 0; start < set.count; start += batchSize) {
    throwIfAborted(signal);
    const n = Math.min(batchSize, set.count - start);
    const out = tf.tidy(() => {
      const y = model.predict(tf.tensor4d(set.images.subarray(start * size, (start + n) * size), [n, ...set.shape])) as tf.Tensor;
      return y.reshape([n, -1]);
    });
    try {
      width = out.shape[1]!;
      rows ??= new Float32Array(set.count * width);
      rows.set((await out.data()) as Float32Array, start * width);
    } finally {
      out.dispose();
    }
    await yieldToEventLoop();
  }
  return { rows: rows ?? new Float32Array(0), width };
}
