import crypto from 'node:crypto';
import type { ImageSet, LabelledDataset } from './image-set';

const memo = new WeakMap<object, string>();

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function updateWithSet(hash: crypto.Hash, set: ImageSet): void {
  // The description fixes how the arrays that follow are cut, so equal bytes in another layout hash differently.
  hash.update(
    JSON.stringify({
      count: set.count,
      shape: set.shape,
      numClasses: set.numClasses,
      contexts: !!set.contexts,
      teacherLogits: !!set.teacherLogits,
    }),
  );
  hash.update(bytesOf(set.images));
  hash.update(bytesOf(set.labels));
  if (set.contexts) hash.update(bytesOf(set.contexts));
  if (set.teacherLogits) hash.update(bytesOf(set.teacherLogits));
}

/**
 * SHA-256 (hex) of an image set's content: shape, pixels, labels, contexts and teacher logits.
 * Memoised per object; an ImageSet must not be mutated after it is hashed.
 */
export function imageSetHash(set: ImageSet): string {
  const known = memo.get(set);
  if (known) return known;
  const hash = crypto.createHash('sha256');
  updateWithSet(hash, set);
  const digest = hash.digest('hex');
  memo.set(set, digest);
  return digest;
}

/** SHA-256 (hex) of a data set's content (class names, context names, both splits), for run records. */
export function datasetHash(ds: LabelledDataset): string {
  const known = memo.get(ds);
  if (known) return known;
  const hash = crypto.createHash('sha256');
  hash.update(JSON.stringify({ classNames: ds.classNames, contextNames: ds.contextNames ?? null }));
  hash.update(imageSetHash(ds.train));
  hash.update(imageSetHash(ds.test));
  const digest = hash.digest('hex');
  memo.set(ds, digest);
  return digest;
}
