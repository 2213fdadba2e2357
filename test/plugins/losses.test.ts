import * as tf from '@tensorflow/tfjs';
import { kdLoss, softCrossEntropy, softenedKlDivergence } from '../../src/core/plugins/losses';
import { SeededRandom } from '../../src/core/random';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const ln = Math.log;

function scalar(f: () => tf.Scalar): number {
  const t = f();
  const v = t.dataSync()[0];
  t.dispose();
  return v;
}

describe('kdLoss on hand-computed inputs', () => {
  // Row 1: student softmax [1/2, 1/2], teacher softmax [3/4, 1/4], label 0.
  // Row 2: student softmax [1/4, 3/4], teacher softmax [1/2, 1/2], label 1.
  const kl1 = 0.75 * ln(0.75 / 0.5) + 0.25 * ln(0.25 / 0.5);
  const kl2 = 0.5 * ln(0.5 / 0.25) + 0.5 * ln(0.5 / 0.75);
  const ce1 = -ln(0.5);
  const ce2 = -ln(0.75);

  it('averages KL(teacher ‖ student) and cross-entropy over the batch, weighting by alpha·T² and 1 − alpha', () => {
    const s = tf.tensor2d([[0, 0], [0, ln(3)]]);
    const t1 = tf.tensor2d([[ln(3), 0], [0, 0]]);
    const y = tf.tensor1d([0, 1], 'int32');
    expect(scalar(() => softenedKlDivergence(s, t1, 1))).toBeCloseTo((kl1 + kl2) / 2, 6);
    expect(scalar(() => softCrossEntropy(s, y))).toBeCloseTo((ce1 + ce2) / 2, 6);
    expect(scalar(() => kdLoss(s, t1, y, 1, 0.5))).toBeCloseTo(0.5 * (kl1 + kl2) / 2 + 0.5 * (ce1 + ce2) / 2, 6);
    expect(scalar(() => kdLoss(s, t1, y, 1, 1))).toBeCloseTo((kl1 + kl2) / 2, 6);
    expect(scalar(() => kdLoss(s, t1, y, 1, 0))).toBeCloseTo((ce1 + ce2) / 2, 6);
    tf.dispose([s, t1, y]);
  });

  it('softens with T and scales the soft term by T²', () => {
    // With T = 2, logits twice as large give the same softened distributions as above.
    const s = tf.tensor2d([[0, 0], [0, 2 * ln(3)]]);
    const t2 = tf.tensor2d([[2 * ln(3), 0], [0, 0]]);
    const y = tf.tensor1d([0, 1], 'int32');
    const ceAtT1 = (-ln(0.5) - ln(0.9)) / 2; // softmax([0, 2 ln 3]) = [1/10, 9/10]
    expect(scalar(() => kdLoss(s, t2, y, 2, 0.25))).toBeCloseTo(0.25 * 4 * ((kl1 + kl2) / 2) + 0.75 * ceAtT1, 5);
    tf.dispose([s, t2, y]);
  });

  it('takes one-hot labels as well as class indices', () => {
    const s = tf.tensor2d([[1, -2, 0.5]]);
    const t = tf.tensor2d([[0.3, 0.1, 2]]);
    const a = scalar(() => kdLoss(s, t, tf.tensor1d([2], 'int32'), 3, 0.7));
    const b = scalar(() => kdLoss(s, t, tf.tensor2d([[0, 0, 1]]), 3, 0.7));
    expect(a).toBeCloseTo(b, 6);
    tf.dispose([s, t]);
  });

  it('is zero when the student equals the teacher and alpha = 1', () => {
    const s = tf.tensor2d([[1, 5, -3]]);
    expect(scalar(() => kdLoss(s, s, tf.tensor1d([0], 'int32'), 4, 1))).toBeCloseTo(0, 6);
    s.dispose();
  });

  it('stays finite for extreme logits', () => {
    const s = tf.tensor2d([[200, -200, 0]]);
    const t = tf.tensor2d([[-300, 300, 0]]);
    expect(Number.isFinite(scalar(() => kdLoss(s, t, tf.tensor1d([0], 'int32'), 1, 0.5)))).toBe(true);
    tf.dispose([s, t]);
  });

  it('rejects a non-positive temperature and alpha outside [0, 1]', () => {
    const s = tf.tensor2d([[0, 1]]);
    const y = tf.tensor1d([0], 'int32');
    expect(() => kdLoss(s, s, y, 0, 0.5)).toThrow(/temperature/);
    expect(() => kdLoss(s, s, y, 1, 1.5)).toThrow(/alpha/);
    tf.dispose([s, y]);
  });
});

describe('kdLoss gradient with respect to the student logits', () => {
  const batch = 3;
  const classes = 4;
  const random = new SeededRandom(7);
  const sValues = Array.from({ length: batch * classes }, () => 2 * random.gaussian());
  const tValues = Array.from({ length: batch * classes }, () => 3 * random.gaussian());
  const labels = [2, 0, 3];

  function softmaxRows(values: number[], scale: number): number[] {
    const out: number[] = [];
    for (let b = 0; b < batch; b++) {
      const row = values.slice(b * classes, (b + 1) * classes).map((v) => v / scale);
      const m = Math.max(...row);
      const e = row.map((v) => Math.exp(v - m));
      const z = e.reduce((a, c) => a + c, 0);
      out.push(...e.map((v) => v / z));
    }
    return out;
  }

  it.each([
    [4, 0.9],
    [1, 0.5],
    [10, 0.3],
  ])('matches the closed form and finite differences (T=%s, alpha=%s)', (T, alpha) => {
    const t = tf.tensor2d(tValues, [batch, classes]);
    const y = tf.tensor1d(labels, 'int32');
    const loss = (s: tf.Tensor) => kdLoss(s as tf.Tensor2D, t, y, T, alpha);
    const g = tf.tidy(() => tf.grad(loss)(tf.tensor2d(sValues, [batch, classes])));
    const grad = Array.from(g.dataSync());
    g.dispose();

    // Closed form: (alpha·T·(softmax(s/T) − softmax(t/T)) + (1 − alpha)(softmax(s) − onehot)) / batch.
    const psT = softmaxRows(sValues, T);
    const ptT = softmaxRows(tValues, T);
    const ps1 = softmaxRows(sValues, 1);
    const closed = sValues.map((_, i) => {
      const onehot = labels[Math.floor(i / classes)] === i % classes ? 1 : 0;
      return (alpha * T * (psT[i] - ptT[i]) + (1 - alpha) * (ps1[i] - onehot)) / batch;
    });
    grad.forEach((v, i) => expect(v).toBeCloseTo(closed[i], 5));

    // Central finite differences of the float32 loss.
    const eps = 1e-2;
    const f = (values: number[]) => scalar(() => tf.tidy(() => loss(tf.tensor2d(values, [batch, classes]))));
    sValues.forEach((_, i) => {
      const up = sValues.slice();
      const down = sValues.slice();
      up[i] += eps;
      down[i] -= eps;
      expect(grad[i]).toBeCloseTo((f(up) - f(down)) / (2 * eps), 3);
    });
    tf.dispose([t, y]);
  });
});
