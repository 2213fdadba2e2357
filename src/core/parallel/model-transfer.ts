import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';

/**
 * A LayersModel as plain data a worker can rebuild with `tf.io.fromMemory`: the JSON topology, the
 * weights manifest and one buffer of weight bytes. `key` identifies the exact model (topology and
 * weights) so a worker can keep it loaded between jobs.
 */
export interface SerializedModel {
  key: string;
  topology: string;
  weightSpecs: tf.io.WeightsManifestEntry[];
  weightData: ArrayBuffer;
}

/** Serializes `model` (topology + current weights) for workers; nothing touches the disk. */
export async function serializeModel(model: tf.LayersModel): Promise<SerializedModel> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (artifacts === undefined || artifacts.modelTopology === undefined) throw new Error(`model ${model.name} could not be serialized`);
  const joined = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
  // A copy, so the caller's buffer may be transferred without detaching anything TF.js holds.
  const weightData = joined.slice(0);
  const topology = JSON.stringify(artifacts.modelTopology);
  const key = createHash('sha256').update(topology).update(new Uint8Array(weightData)).digest('hex').slice(0, 32);
  return { key, topology, weightSpecs: artifacts.weightSpecs ?? [], weightData };
}

/** Rebuilds a model sent by `serializeModel`. The caller owns (and disposes) it. */
export async function loadSerializedModel(serialized: SerializedModel): Promise<tf.LayersModel> {
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: JSON.parse(serialized.topology), weightSpecs: serialized.weightSpecs, weightData: serialized.weightData }),
  );
}

/** Shapes and sizes of a list of tensors packed one after another into one Float32Array. */
export interface PackedLayout {
  names: string[];
  shapes: number[][];
  /** Offset of each tensor in the packed array; the last entry is the total length. */
  offsets: number[];
}

export function packedLayout(entries: { name: string; shape: readonly number[] }[]): PackedLayout {
  const offsets = [0];
  for (const e of entries) offsets.push(offsets[offsets.length - 1] + e.shape.reduce((a, b) => a * b, 1));
  return { names: entries.map((e) => e.name), shapes: entries.map((e) => [...e.shape]), offsets };
}

/**
 * Reads tensors into one Float32Array (concatenated in order). The concat runs in a tidy; the data is
 * read outside it (reading inside tidy is the slow path DESIGN.md warns of).
 */
export async function packTensors(tensors: readonly tf.Tensor[]): Promise<Float32Array> {
  if (tensors.length === 0) return new Float32Array(0);
  const flat = tf.tidy(() => tf.concat(tensors.map((t) => tf.reshape(tf.cast(t, 'float32'), [-1]))));
  try {
    return (await flat.data()) as Float32Array;
  } finally {
    flat.dispose();
  }
}

/** Views of each tensor's slice of a packed array (no copy). */
export function unpackViews(packed: Float32Array, layout: PackedLayout): Float32Array[] {
  return layout.shapes.map((_, i) => packed.subarray(layout.offsets[i], layout.offsets[i + 1]));
}
