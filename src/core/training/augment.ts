import type { SeededRandom } from '../random';

export interface AugmentOptions {
  /** Mirror left-right with probability 1/2 (off by default: wrong for digits). */
  flip?: boolean;
  /** Random crop after zero padding by this many pixels on each side (0 = none). */
  cropPadding?: number;
}

/**
 * Copies image `src` (H×W×C, NHWC layout) into `dst` with a seeded random crop from the zero-padded
 * image and an optional horizontal flip. Equivalent to torchvision's RandomCrop(padding) +
 * RandomHorizontalFlip, without allocating the padded image.
 */
export function augmentInto(
  src: Float32Array,
  dst: Float32Array,
  shape: [number, number, number],
  options: AugmentOptions,
  random: SeededRandom,
): void {
  const [h, w, c] = shape;
  const pad = options.cropPadding ?? 0;
  const dy = pad > 0 ? random.int(2 * pad + 1) - pad : 0;
  const dx = pad > 0 ? random.int(2 * pad + 1) - pad : 0;
  const flip = options.flip === true && random.next() < 0.5;
  if (dy === 0 && dx === 0 && !flip) {
    dst.set(src);
    return;
  }
  for (let y = 0; y < h; y++) {
    const sy = y + dy;
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * c;
      const sx = (flip ? w - 1 - x : x) + dx;
      if (sy < 0 || sy >= h || sx < 0 || sx >= w) {
        dst.fill(0, o, o + c);
      } else {
        const s = (sy * w + sx) * c;
        for (let k = 0; k < c; k++) dst[o + k] = src[s + k];
      }
    }
  }
}
