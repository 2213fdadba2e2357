import type * as tf from '@tensorflow/tfjs';
import { loadSerializedModel, type SerializedModel } from './model-transfer';

/**
 * Models a thread keeps loaded between jobs, by `SerializedModel.key` (the same teacher is sent with
 * every synthesis batch). Holds at most `capacity`; the least recently used one is disposed.
 */
export class ModelCache {
  private readonly models = new Map<string, Promise<tf.LayersModel>>();

  constructor(private readonly capacity = 2) {}

  get(serialized: SerializedModel): Promise<tf.LayersModel> {
    let model = this.models.get(serialized.key);
    if (model !== undefined) {
      this.models.delete(serialized.key);
    } else {
      model = loadSerializedModel(serialized);
      model.catch(() => this.models.delete(serialized.key));
    }
    this.models.set(serialized.key, model);
    while (this.models.size > this.capacity) {
      const [oldest, evicted] = this.models.entries().next().value!;
      this.models.delete(oldest);
      void evicted.then((m) => m.dispose(), () => undefined);
    }
    return model;
  }

  async clear(): Promise<void> {
    const all = [...this.models.values()];
    this.models.clear();
    for (const m of await Promise.allSettled(all)) if (m.status === 'fulfilled') m.value.dispose();
  }
}
