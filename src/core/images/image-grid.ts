import { PNG } from 'pngjs';
import { imageSize, type ImageSet } from '../data/image-set';

export interface ImageGridOptions {
  /** Images shown per class (one row per class). Default 8. */
  perClass?: number;
  /** Classes shown, lowest labels first. Default 10. */
  maxClasses?: number;
  /** Pixel gap between cells (drawn black). Default 2. */
  gap?: number;
  /** Each image pixel becomes scale×scale output pixels. Default 1. */
  scale?: number;
}

/**
 * A PNG with one row per class: the first `perClass` images of each of the first `maxClasses` classes
 * that have any images, in the order they appear in the set. Pixels in [0, 1] (clipped); grey
 * images are drawn grey, 3-channel images in colour. Rows of classes with fewer images stay black
 * where images are missing.
 */
export function imageGridPng(set: ImageSet, options: ImageGridOptions = {}): Buffer {
  const perClass = options.perClass ?? 8;
  const maxClasses = options.maxClasses ?? 10;
  const gap = options.gap ?? 2;
  const scale = options.scale ?? 1;
  const [h, w, c] = set.shape;
  if (c !== 1 && c !== 3) throw new Error(`image grids need 1 or 3 channels; got ${c}`);
  if (!(perClass >= 1 && maxClasses >= 1 && scale >= 1 && gap >= 0)) throw new RangeError('perClass, maxClasses and scale must be ≥ 1, gap ≥ 0');

  const byClass = new Map<number, number[]>();
  for (let i = 0; i < set.count; i++) {
    const label = set.labels[i];
    const list = byClass.get(label) ?? [];
    if (list.length < perClass) list.push(i);
    byClass.set(label, list);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b).slice(0, maxClasses);
  const rows = Math.max(classes.length, 1);
  const cellW = w * scale;
  const cellH = h * scale;
  const png = new PNG({ width: gap + perClass * (cellW + gap), height: gap + rows * (cellH + gap) });
  png.data.fill(0);
  for (let p = 3; p < png.data.length; p += 4) png.data[p] = 255;

  const size = imageSize(set);
  classes.forEach((label, row) => {
    byClass.get(label)!.forEach((index, col) => {
      const base = index * size;
      const x0 = gap + col * (cellW + gap);
      const y0 = gap + row * (cellH + gap);
      for (let y = 0; y < cellH; y++) {
        for (let x = 0; x < cellW; x++) {
          const src = base + (Math.floor(y / scale) * w + Math.floor(x / scale)) * c;
          const dst = ((y0 + y) * png.width + (x0 + x)) * 4;
          for (let k = 0; k < 3; k++) png.data[dst + k] = toByte(set.images[src + (c === 3 ? k : 0)]);
        }
      }
    });
  });
  return PNG.sync.write(png);
}

function toByte(v: number): number {
  if (!(v > 0)) return 0; // also NaN
  return v >= 1 ? 255 : Math.round(v * 255);
}
