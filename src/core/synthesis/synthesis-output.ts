import * as tf from '@tensorflow/tfjs';
import { randomSubset, type ImageSet } from '../data/image-set';
import { imageGridPng } from '../images/image-grid';
import type { ModelHandle } from '../models/model-spec';
import type { StageMetrics, SynthesisOutput } from '../plugins/contracts';
import { predictRows } from '../models/predict';
import { featureMoments, frechetDistance } from './frechet-distance';

/** Statistics of the teacher's answers on a set of logits rows. */
export interface TeacherAnswerStats {
  labels: Int32Array;
  /** Mean over images of the largest softmax probability. */
  confidence: number;
  /** Mean over images of the softmax entropy, in nats. */
  entropy: number;
  /** Images per class. */
  histogram: Int32Array;
  /** Fewest images of any class divided by most images of any class (1 = balanced, 0 = some class never chosen). */
  classBalance: number;
}

/** Argmax labels, confidence, entropy and class balance of logits rows [count × numClasses]. */
export function teacherAnswerStats(logits: Float32Array, count: number, numClasses: number): TeacherAnswerStats {
  const labels = new Int32Array(count);
  const histogram = new Int32Array(numClasses);
  let confidence = 0;
  let entropy = 0;
  for (let i = 0; i < count; i++) {
    const row = logits.subarray(i * numClasses, (i + 1) * numClasses);
    let best = 0;
    for (let k = 1; k < numClasses; k++) if (row[k] > row[best]) best = k;
    let partition = 0;
    for (let k = 0; k < numClasses; k++) partition += Math.exp(row[k] - row[best]);
    let h = 0;
    for (let k = 0; k < numClasses; k++) {
      const logP = row[k] - row[best] - Math.log(partition);
      h -= Math.exp(logP) * logP;
    }
    labels[i] = best;
    histogram[best]++;
    confidence += 1 / partition;
    entropy += h;
  }
  let min = Infinity;
  let max = 0;
  for (const n of histogram) {
    min = Math.min(min, n);
    max = Math.max(max, n);
  }
  return { labels, confidence: confidence / count, entropy: entropy / count, histogram, classBalance: max > 0 ? min / max : 0 };
}

/**
 * The classifier's feature space: the input of the model's last Dense layer (LeNet's 84-unit layer,
 * a ResNet's pooled features). Throws when the model has no Dense layer fed by one tensor.
 */
export function penultimateModel(model: tf.LayersModel): tf.LayersModel {
  const dense = [...model.layers].reverse().find((layer) => layer.getClassName() === 'Dense');
  if (dense === undefined) throw new Error(`model ${model.name} has no Dense layer; its penultimate features are undefined`);
  const input = dense.input;
  if (Array.isArray(input)) throw new Error(`Dense layer ${dense.name} of model ${model.name} has several inputs`);
  return tf.model({ inputs: model.inputs, outputs: input });
}

/**
 * Fréchet distance between two image sets in the teacher's penultimate feature space ("FID with the
 * teacher as the feature extractor"). Sample sizes bias it: compare sets of similar size.
 */
export async function teacherFrechetDistance(teacher: tf.LayersModel, a: ImageSet, b: ImageSet, signal: AbortSignal): Promise<number> {
  const features = penultimateModel(teacher);
  const fa = await predictRows(features, a, 256, signal);
  const fb = await predictRows(features, b, 256, signal);
  return frechetDistance(featureMoments(fa.rows, a.count, fa.width), featureMoments(fb.rows, b.count, fb.width));
}

/** Images a synthesis stage made, before the platform labels and measures them. */
export interface MadeImages {
  /** NHWC pixels in [0, 1]. */
  images: Float32Array;
  /** The class each image was made for; absent when the teacher's argmax is the label (noise). */
  targets?: Int32Array;
  count: number;
  shape: [number, number, number];
  numClasses: number;
  /** Seconds spent making the images. */
  seconds: number;
}

export interface FinishOptions {
  /** Real images; when given, the Fréchet distance to them is measured (on at most `count` of them). */
  reference?: ImageSet;
  /** File name of the per-class PNG grid. */
  gridName: string;
  signal: AbortSignal;
  /** Seed of the reference subset. */
  seed?: number;
  extraMetrics?: StageMetrics;
}

/**
 * Turns made images into a synthesis stage's output: the teacher's logits on every image, the
 * dataset (labels = targets when given, else the teacher's argmax), a per-class PNG grid and the
 * metrics people compare methods by: imagesMade, seconds, imagesPerSecond, teacherConfidence,
 * teacherEntropy (nats), classBalance (of the teacher's labels), targetAgreement (share of images the
 * teacher labels as their target) and frechetDistance (to `reference`, teacher penultimate features).
 */
export async function finishSynthesis(teacher: ModelHandle, made: MadeImages, options: FinishOptions): Promise<SynthesisOutput> {
  const { rows: teacherLogits } = await predictRows(teacher.model, made, 256, options.signal);
  const stats = teacherAnswerStats(teacherLogits, made.count, made.numClasses);
  const labels = made.targets ?? stats.labels;
  const dataset: ImageSet = { images: made.images, labels, teacherLogits, count: made.count, shape: made.shape, numClasses: made.numClasses };

  const metrics: StageMetrics = {
    imagesMade: made.count,
    seconds: made.seconds,
    imagesPerSecond: made.count / Math.max(made.seconds, 1e-3),
    teacherConfidence: stats.confidence,
    teacherEntropy: stats.entropy,
    classBalance: stats.classBalance,
  };
  if (made.targets) {
    let agree = 0;
    for (let i = 0; i < made.count; i++) if (stats.labels[i] === made.targets[i]) agree++;
    metrics.targetAgreement = agree / made.count;
  }
  if (options.reference) {
    const ref = options.reference;
    if (ref.shape.some((d, i) => d !== made.shape[i])) {
      throw new Error(`reference images are ${ref.shape.join('×')}; the synthetic images are ${made.shape.join('×')}`);
    }
    if (made.count >= 2 && ref.count >= 2) {
      const subset = randomSubset(ref, Math.max(made.count, 2), options.seed ?? 0);
      metrics.frechetDistance = await teacherFrechetDistance(teacher.model, dataset, subset, options.signal);
    }
  }
  Object.assign(metrics, options.extraMetrics);
  return {
    dataset,
    metrics,
    images: [{ name: options.gridName, png: imageGridPng(dataset, { perClass: 8, maxClasses: 10, scale: made.shape[0] < 32 ? 2 : 1 }) }],
  };
}
