/**
 * Seeded pseudo-random numbers (mulberry32). Every random choice in Condense goes through one of
 * these, created from an explicit seed; nothing reads Math.random.
 */
export class SeededRandom {
  private state: number;
  private spareGaussian: number | undefined;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller). */
  gaussian(): number {
    if (this.spareGaussian !== undefined) {
      const g = this.spareGaussian;
      this.spareGaussian = undefined;
      return g;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareGaussian = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    this.shuffle(p);
    return p;
  }

  shuffle<T extends { length: number; [i: number]: any }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const x = a[i];
      a[i] = a[j];
      a[j] = x;
    }
    return a;
  }

  /** The generator's full state, to be given back to `restoreState` (checkpoints). */
  saveState(): RandomState {
    return { state: this.state, spareGaussian: this.spareGaussian ?? null };
  }

  restoreState(saved: RandomState): void {
    this.state = saved.state >>> 0;
    this.spareGaussian = saved.spareGaussian ?? undefined;
  }

  /** A 31-bit seed derived from this stream, for seeding another generator (e.g. a tf initializer). */
  deriveSeed(): number {
    return this.int(0x7fffffff);
  }
}

export interface RandomState {
  state: number;
  spareGaussian: number | null;
}

/**
 * A uniform draw in [0, 1) fixed by `seed` and a batch's image indices (FNV-1a over them): the same
 * batch always gets the same draw, so a run resumed from a checkpoint (which replays the same batch
 * order) draws exactly what the uninterrupted run drew, without storing generator state.
 */
export function uniformForBatch(seed: number, indices: ArrayLike<number>): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < indices.length; i++) {
    h ^= indices[i] & 0xffff;
    h = Math.imul(h, 0x01000193) >>> 0;
    h ^= indices[i] >>> 16;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return new SeededRandom(h).next();
}
