/**
 * Target classes of synthetic images. Image `offset + i` of a run is made for class
 * `(offset + i) % numClasses`, so every batch holds each class at most one image more than any other
 * and the whole set is balanced the same way, whatever the batch size (the reference code's
 * `[0..9]*25 + [0..5]` list only works for 256 images of 10 classes).
 */
export function classBalancedTargets(offset: number, count: number, numClasses: number): Int32Array {
  if (!(Number.isInteger(offset) && offset >= 0)) throw new RangeError(`offset must be a non-negative integer; got ${offset}`);
  if (!(Number.isInteger(count) && count >= 0)) throw new RangeError(`count must be a non-negative integer; got ${count}`);
  if (!(Number.isInteger(numClasses) && numClasses > 0)) throw new RangeError(`numClasses must be a positive integer; got ${numClasses}`);
  return Int32Array.from({ length: count }, (_, i) => (offset + i) % numClasses);
}
