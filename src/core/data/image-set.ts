import { SeededRandom } from '../random';

/**
 * An in-memory labelled image set. Pixels are float32 in [0, 1], laid out N×H×W×C (NHWC),
 * which is what TF.js convolutions take.
 */
export interface ImageSet {
  images: Float32Array;
  labels: Int32Array;
  /** Optional context label per image (for example the colour in Colored-MNIST). */
  contexts?: Int32Array;
  /** Teacher logits per image (N×numClasses), present on synthetic sets. */
  teacherLogits?: Float32Array;
  count: number;
  /** [height, width, channels] */
  shape: [number, number, number];
  numClasses: number;
}

/** A dataset with its fixed train/test split and a description of where it came from. */
export interface LabelledDataset {
  name: string;
  classNames: string[];
  /** Names of the context labels, when the dataset has them. */
  contextNames?: string[];
  /** Where the images came from and how the split was made; shown beside any figure. */
  provenance: string;
  train: ImageSet;
  test: ImageSet;
}

export function imageSize(set: Pick<ImageSet, 'shape'>): number {
  return set.shape[0] * set.shape[1] * set.shape[2];
}

/** Copies the images at `indices` into a new ImageSet (labels, contexts and logits follow). */
export function selectImages(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const size = imageSize(set);
  const n = indices.length;
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  const contexts = set.contexts ? new Int32Array(n) : undefined;
  const logits = set.teacherLogits ? new Float32Array(n * set.numClasses) : undefined;
  for (let i = 0; i < n; i++) {
    const j = indices[i];
    if (j < 0 || j >= set.count) throw new RangeError(`image index ${j} outside 0..${set.count - 1}`);
    images.set(set.images.subarray(j * size, (j + 1) * size), i * size);
    labels[i] = set.labels[j];
    if (contexts) contexts[i] = set.contexts![j];
    if (logits) logits.set(set.teacherLogits!.subarray(j * set.numClasses, (j + 1) * set.numClasses), i * set.numClasses);
  }
  return { images, labels, contexts, teacherLogits: logits, count: n, shape: set.shape, numClasses: set.numClasses };
}

/** A seeded random subset of `count` images (the set itself when `count` is at least its size). */
export function randomSubset(set: ImageSet, count: number, seed: number): ImageSet {
  if (count >= set.count) return set;
  return selectImages(set, new SeededRandom(seed).permutation(set.count).subarray(0, count));
}
