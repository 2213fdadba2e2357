import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../../src/core/data/image-set';
import { evaluateClassifier } from '../../src/core/training/evaluator';
import { TrainingInputError } from '../../src/core/training/trainer';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A 1×1×6 "image" goes through flatten and an identity dense layer: its pixels are the logits. */
function identityClassifier(classes: number): tf.LayersModel {
  const input = tf.input({ shape: [1, 1, classes] });
  const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: classes, kernelInitializer: 'identity', biasInitializer: 'zeros' });
  return tf.model({ inputs: input, outputs: dense.apply(flat) as tf.SymbolicTensor });
}

describe('evaluateClassifier', () => {
  const logits = [
    [0.9, 0.1, 0.2, 0.3, 0.4, 0.5], // label 0: top-1 hit
    [0.1, 0.9, 0.8, 0.7, 0.6, 0.5], // label 0: lowest logit, outside the top 5
    [0.2, 0.3, 0.9, 0.1, 0.0, 0.4], // label 5: second highest, top-5 hit only
    [0.0, 0.0, 1.0, 0.0, 0.0, 0.0], // label 2: top-1 hit
  ];
  const labels = [0, 0, 5, 2];
  const data: ImageSet = {
    images: Float32Array.from(logits.flat()),
    labels: Int32Array.from(labels),
    count: 4,
    shape: [1, 1, 6],
    numClasses: 6,
  };

  it('computes top-1, top-5, per-class accuracy and mean cross-entropy from known logits, across batches', async () => {
    const model = identityClassifier(6);
    const before = tf.memory().numTensors;
    const r = await evaluateClassifier(model, data, 3);
    expect(tf.memory().numTensors).toBe(before);
    expect(r.count).toBe(4);
    expect(r.top1).toBeCloseTo(2 / 4, 12);
    expect(r.top5).toBeCloseTo(3 / 4, 12);
    expect(r.perClassCount).toEqual([2, 0, 1, 0, 0, 1]);
    expect(r.perClass).toEqual([0.5, 0, 1, 0, 0, 0]);
    const nll = logits.map((row, i) => Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[labels[i]]);
    expect(r.loss).toBeCloseTo(nll.reduce((a, b) => a + b, 0) / 4, 5);
    model.dispose();
  });

  it('counts every image in the top 5 when there are fewer than 5 classes', async () => {
    const model = identityClassifier(3);
    const r = await evaluateClassifier(model, { images: Float32Array.from([1, 0, 0, 0, 1, 0]), labels: Int32Array.from([2, 1]), count: 2, shape: [1, 1, 3], numClasses: 3 });
    expect(r.top1).toBe(0.5);
    expect(r.top5).toBe(1);
    model.dispose();
  });

  it('rejects data of another shape', async () => {
    const model = identityClassifier(6);
    await expect(evaluateClassifier(model, { ...data, shape: [1, 2, 3] })).rejects.toBeInstanceOf(TrainingInputError);
    model.dispose();
  });
});
