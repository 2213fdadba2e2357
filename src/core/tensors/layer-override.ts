import * as tf from '@tensorflow/tfjs';
import type { Logger } from '../logging/logger';

/**
 * A registration, run once, that makes tfjs-layers deserialise a layer class name to Condense's
 * subclass of it (the subclass declares the same static `className`). On a tfjs-layers version other
 * than `writtenFor` it still registers, with a warning naming `what`: run test/tensors to check it.
 */
export function layerOverrideRegistration(subclass: { className: string }, writtenFor: string, what: string): (log?: Logger) => void {
  let registered = false;
  return (log?: Logger) => {
    if (registered) return;
    if (tf.version_layers !== writtenFor) {
      log?.warn({ expected: writtenFor, layers: tf.version_layers }, `${what} was written for another tfjs-layers version; run test/tensors`);
    }
    tf.serialization.SerializationMap.register(subclass as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);
    registered = true;
  };
}
