import type { ImageSet, LabelledDataset } from './image-set';

/**
 * A split as it is read from disk and cached: one byte per pixel (0..255), N×H×W×C.
 * Readers produce these; `toLabelledDataset` turns them into float pixels in [0, 1].
 */
export interface RawImageSet {
  pixels: Uint8Array;
  labels: Int32Array;
  contexts?: Int32Array;
  count: number;
  /** [height, width, channels] */
  shape: [number, number, number];
}

export interface RawDataset {
  name: string;
  classNames: string[];
  contextNames?: string[];
  provenance: string;
  train: RawImageSet;
  test: RawImageSet;
}

const BYTE_TO_UNIT = new Float32Array(256).map((_, i) => i / 255);

export function bytesToUnitFloats(pixels: Uint8Array): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = BYTE_TO_UNIT[pixels[i]];
  return out;
}

export function toImageSet(raw: RawImageSet, numClasses: number): ImageSet {
  return {
    images: bytesToUnitFloats(raw.pixels),
    labels: raw.labels,
    contexts: raw.contexts,
    count: raw.count,
    shape: raw.shape,
    numClasses,
  };
}

export function toLabelledDataset(raw: RawDataset): LabelledDataset {
  const numClasses = raw.classNames.length;
  return {
    name: raw.name,
    classNames: raw.classNames,
    contextNames: raw.contextNames,
    provenance: raw.provenance,
    train: toImageSet(raw.train, numClasses),
    test: toImageSet(raw.test, numClasses),
  };
}

/** Images per class, for checks and provenance text. */
export function classCounts(labels: ArrayLike<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}
