import * as tf from '@tensorflow/tfjs';
import { silentLogger } from '../../../src/core/logging/logger';
import type { StageContext, StageProgress } from '../../../src/core/plugins/contracts';

/** A real StageContext for running a plugin outside a pipeline; progress reports are collected. */
export function stageContext(seed: number, signal: AbortSignal = new AbortController().signal): StageContext & { reports: StageProgress[] } {
  const reports: StageProgress[] = [];
  return { seed, backend: tf.getBackend(), signal, log: silentLogger, report: (p) => reports.push(p), reports };
}

/** A small conv classifier made of plain tf.layers, with seeded initialisers (no zoo needed). */
export function tinyConvNet(inputShape: [number, number, number], numClasses: number, seed: number): tf.LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape, filters: 4, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed }) }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 12, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }));
  model.add(tf.layers.dense({ units: numClasses, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }) }));
  return model;
}

/** Logits of a model on NHWC images, read back as a flat array. */
export async function predictLogits(model: tf.LayersModel, images: Float32Array, shape: [number, number, number]): Promise<Float32Array> {
  const n = images.length / (shape[0] * shape[1] * shape[2]);
  const out = tf.tidy(() => model.predict(tf.tensor4d(images, [n, ...shape])) as tf.Tensor);
  const data = (await out.data()) as Float32Array;
  out.dispose();
  return data;
}
