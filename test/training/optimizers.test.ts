import * as tf from '@tensorflow/tfjs';
import { createOptimizer, isKernelWeight } from '../../src/core/training/optimizers';
import { augmentInto } from '../../src/core/training/augment';
import { SeededRandom } from '../../src/core/random';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Runs `steps` updates on w with gradient g(w) = 2w (loss ‖w‖²) and returns w after each step. */
function run(kind: 'sgd' | 'adam', decay: boolean, steps: number, lrs: number[]): number[][] {
  const w = tf.variable(tf.tensor1d([1, -2]));
  const opt = createOptimizer([{ variable: w, decay }], { kind, momentum: 0.9, weightDecay: 0.1 });
  const out: number[][] = [];
  for (let s = 0; s < steps; s++) {
    const g = tf.mul(w, 2);
    opt.step([g], lrs[s]);
    g.dispose();
    out.push(Array.from(w.dataSync()));
  }
  opt.dispose();
  w.dispose();
  return out;
}

describe('SGD with momentum', () => {
  it('matches v ← μv + (g + wd·w), w ← w − lr·v computed by hand', () => {
    const lrs = [0.1, 0.05];
    const got = run('sgd', true, 2, lrs);
    let w = [1, -2];
    let v = [0, 0];
    const expected: number[][] = [];
    for (const lr of lrs) {
      v = v.map((vi, i) => 0.9 * vi + 2 * w[i] + 0.1 * w[i]);
      w = w.map((wi, i) => wi - lr * v[i]);
      expected.push(w);
    }
    got.forEach((row, s) => row.forEach((x, i) => expect(x).toBeCloseTo(expected[s][i], 6)));
  });

  it('skips weight decay on parameters not flagged for it', () => {
    const got = run('sgd', false, 1, [0.1]);
    expect(got[0][0]).toBeCloseTo(1 - 0.1 * 2, 6);
  });
});

describe('Adam (decoupled weight decay)', () => {
  it('matches the bias-corrected update plus lr·wd·w computed by hand', () => {
    const lrs = [0.01, 0.02, 0.03];
    const got = run('adam', true, 3, lrs);
    let w = [1, -2];
    let m = [0, 0];
    let v = [0, 0];
    const expected: number[][] = [];
    lrs.forEach((lr, s) => {
      const t = s + 1;
      const g = w.map((x) => 2 * x);
      m = m.map((mi, i) => 0.9 * mi + 0.1 * g[i]);
      v = v.map((vi, i) => 0.999 * vi + 0.001 * g[i] * g[i]);
      w = w.map((wi, i) => {
        const mh = m[i] / (1 - 0.9 ** t);
        const vh = v[i] / (1 - 0.999 ** t);
        return wi - lr * (mh / (Math.sqrt(vh) + 1e-8) + 0.1 * wi);
      });
      expected.push(w);
    });
    got.forEach((row, s) => row.forEach((x, i) => expect(x).toBeCloseTo(expected[s][i], 5)));
  });
});

describe('isKernelWeight', () => {
  it('flags conv and dense kernels only', () => {
    expect(isKernelWeight('conv1/kernel')).toBe(true);
    expect(isKernelWeight('stage2_block1_shortcut_conv/kernel')).toBe(true);
    expect(isKernelWeight('logits/bias')).toBe(false);
    expect(isKernelWeight('bn1/gamma')).toBe(false);
  });
});

describe('augmentInto', () => {
  // 4×3 image with 2 channels; pixel value encodes its position.
  const shape: [number, number, number] = [4, 3, 2];
  const src = Float32Array.from({ length: 24 }, (_, i) => i + 1);
  const at = (img: Float32Array, y: number, x: number, c: number) => img[(y * 3 + x) * 2 + c];

  it('with padding p is a copy shifted by some (dy, dx) in [−p, p]², zeros outside', () => {
    const random = new SeededRandom(3);
    const seen = new Set<string>();
    for (let trial = 0; trial < 60; trial++) {
      const dst = new Float32Array(24);
      augmentInto(src, dst, shape, { cropPadding: 1 }, random);
      const matches: string[] = [];
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          let ok = true;
          for (let y = 0; y < 4; y++) for (let x = 0; x < 3; x++) for (let c = 0; c < 2; c++) {
            const sy = y + dy;
            const sx = x + dx;
            const want = sy < 0 || sy >= 4 || sx < 0 || sx >= 3 ? 0 : at(src, sy, sx, c);
            if (at(dst, y, x, c) !== want) ok = false;
          }
          if (ok) matches.push(`${dy},${dx}`);
        }
      }
      expect(matches).toHaveLength(1);
      seen.add(matches[0]);
    }
    expect(seen.size).toBe(9);
  });

  it('flip mirrors columns about half the time and never touches rows', () => {
    const random = new SeededRandom(4);
    let flipped = 0;
    for (let trial = 0; trial < 200; trial++) {
      const dst = new Float32Array(24);
      augmentInto(src, dst, shape, { flip: true }, random);
      const isFlip = at(dst, 0, 0, 0) === at(src, 0, 2, 0);
      if (isFlip) flipped += 1;
      for (let y = 0; y < 4; y++) for (let x = 0; x < 3; x++) for (let c = 0; c < 2; c++) {
        expect(at(dst, y, x, c)).toBe(at(src, y, isFlip ? 2 - x : x, c));
      }
    }
    expect(flipped).toBeGreaterThan(70);
    expect(flipped).toBeLessThan(130);
  });
});
