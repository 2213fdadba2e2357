import * as tf from '@tensorflow/tfjs';
import type { ModelHandle, ModelSpec } from '../../src/core/models/model-spec';
import { buildModel } from '../../src/core/models/zoo';
import { PluginInputError, type StageCheckpoint } from '../../src/core/plugins/contracts';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { evaluateClassifier } from '../../src/core/training/evaluator';
import { trainClassifier } from '../../src/core/training/trainer';
import {
  cosineExploreLoss,
  cosineInheritLoss,
  explorationLoss,
  factorTransferDistance,
  findFeatureLayer,
  gatherChannels,
  ieKdConfigSchema,
  inheritanceLoss,
  plugin,
  reconstructionL1,
  splitFactorChannels,
  withFeatureOutput,
} from '../../src/plugins/ie-kd';
import { mnistSample } from '../training/mnist-sample';
import { stageContext, tinyConvNet } from './support/stage';

const scalar = (t: tf.Scalar): number => {
  const v = t.dataSync()[0];
  t.dispose();
  return v;
};

/** Central finite differences of a scalar function of one tensor. */
function numericGradient(f: (x: tf.Tensor) => tf.Scalar, values: number[], shape: number[], eps = 1e-3): number[] {
  return values.map((_, i) => {
    const at = (delta: number) => {
      const v = values.slice();
      v[i] += delta;
      return tf.tidy(() => f(tf.tensor(v, shape)).dataSync()[0]);
    };
    return (at(eps) - at(-eps)) / (2 * eps);
  });
}

function analyticGradient(f: (x: tf.Tensor) => tf.Scalar, values: number[], shape: number[]): number[] {
  return tf.tidy(() => Array.from(tf.grad(f)(tf.tensor(values, shape)).dataSync()));
}

describe('IE-KD losses on hand-computed values', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  // x = [3, 4] normalises to [0.6, 0.8]; y = [1, 0]; d = [−0.4, 0.8].
  const x = () => tf.tensor2d([[3, 4]]);
  const y = () => tf.tensor2d([[1, 0]]);

  it('factor-transfer distance: mean |d| for p = 1, sqrt(mean d²) for p = 2, invariant to scale', () => {
    expect(scalar(factorTransferDistance(x(), y(), 1))).toBeCloseTo((0.4 + 0.8) / 2, 6);
    expect(scalar(factorTransferDistance(x(), y(), 2))).toBeCloseTo(Math.sqrt((0.16 + 0.64) / 2), 6);
    expect(scalar(factorTransferDistance(tf.mul(x(), 7), y(), 1))).toBeCloseTo(0.6, 6);
    // numel counts the whole batch: a second identical pair halves nothing, a second equal pair (d = 0) halves the mean.
    const x2 = tf.tensor2d([[3, 4], [1, 1]]);
    const y2 = tf.tensor2d([[1, 0], [2, 2]]);
    expect(scalar(factorTransferDistance(x2, y2, 1))).toBeCloseTo(1.2 / 4, 6);
    // Factors [batch, h, w, c] are flattened per example.
    expect(scalar(factorTransferDistance(tf.tensor4d([3, 4], [1, 1, 1, 2]), tf.tensor4d([1, 0], [1, 1, 1, 2]), 1))).toBeCloseTo(0.6, 6);
  });

  it('cosine losses: 1 − cos to inherit, |cos| to explore, batch means', () => {
    const xs = tf.tensor2d([[3, 4], [0, 2]]);
    const ys = tf.tensor2d([[1, 0], [0, -1]]);
    // cos = 0.6 and −1.
    expect(scalar(cosineInheritLoss(xs, ys))).toBeCloseTo((0.4 + 2) / 2, 6);
    expect(scalar(cosineExploreLoss(xs, ys))).toBeCloseTo((0.6 + 1) / 2, 6);
    expect(scalar(inheritanceLoss(xs, ys, 'cosine'))).toBeCloseTo(1.2, 6);
    expect(scalar(explorationLoss(x(), y(), 'l1'))).toBeCloseTo(-0.6, 6);
    expect(scalar(inheritanceLoss(x(), y(), 'l2'))).toBeCloseTo(Math.sqrt(0.4), 6);
  });

  it('L1 reconstruction is the mean absolute error', () => {
    expect(scalar(reconstructionL1(tf.tensor1d([1, 2, 3, 4]), tf.tensor1d([1, 0, 4, 4])))).toBeCloseTo(3 / 4, 6);
  });

  it('splits factor channels naturally or by a permutation', () => {
    expect(splitFactorChannels(5, 'natural')).toEqual({ inherit: [0, 1, 2], explore: [3, 4] });
    expect(splitFactorChannels(5, 'random', [4, 0, 3, 1, 2])).toEqual({ inherit: [0, 3, 4], explore: [1, 2] });
    expect(() => splitFactorChannels(1, 'natural')).toThrow(/at least 2/);
    expect(() => splitFactorChannels(4, 'random')).toThrow(/permutation/);
  });

  it.each([
    ['FT l1', (a: tf.Tensor, b: tf.Tensor) => factorTransferDistance(a, b, 1)],
    ['FT l2', (a: tf.Tensor, b: tf.Tensor) => factorTransferDistance(a, b, 2)],
    ['cosine inherit', cosineInheritLoss],
    ['cosine explore', cosineExploreLoss],
  ])('%s gradient matches finite differences', (_label, loss) => {
    const shape = [2, 2, 1, 3];
    const xs = [0.3, -1.2, 0.8, 0.5, 0.1, -0.7, 1.1, 0.4, -0.2, 0.9, -0.6, 0.25];
    const target = tf.tensor([0.5, 0.2, -0.4, 0.9, -1.0, 0.3, 0.1, 0.7, 0.6, -0.3, 0.8, 0.2], shape);
    const f = (t: tf.Tensor) => loss(t, target);
    const analytic = analyticGradient(f, xs, shape);
    const numeric = numericGradient(f, xs, shape);
    analytic.forEach((g, i) => expect(Math.abs(g - numeric[i])).toBeLessThan(2e-3));
    expect(Math.max(...analytic.map(Math.abs))).toBeGreaterThan(1e-3);
    target.dispose();
  });
});

describe('findFeatureLayer', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  it.each<[string, ModelSpec, string, number[]]>([
    ['LeNet-5-BN', { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 }, 'relu2', [null, 10, 10, 16] as unknown as number[]],
    ['ResNet-14', { architecture: 'resnet-cifar', inputShape: [32, 32, 3], numClasses: 10, width: 0.5, depth: 14 }, 'stage3_block2_relu2', [null, 8, 8, 32] as unknown as number[]],
    ['VGG-BN', { architecture: 'vgg-bn', inputShape: [32, 32, 3], numClasses: 10, width: 0.25, depth: 2 }, 'block2_relu2', [null, 16, 16, 16] as unknown as number[]],
  ])('finds the last feature map of %s', (_label, spec, name, shape) => {
    const model = buildModel(spec, 0);
    expect(findFeatureLayer(model)).toBe(name);
    const features = withFeatureOutput(model, name);
    expect(features.outputs[0].shape).toEqual(shape);
    expect(features.outputs[1].shape).toEqual([null, 10]);
    model.dispose();
  });

  it('works on a plain imported Sequential and refuses models without a flatten/pooling head', () => {
    const model = tinyConvNet([12, 12, 1], 3, 1);
    expect(findFeatureLayer(model)).toBe(model.layers[0].name);
    const dense = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 2 })] });
    expect(() => findFeatureLayer(dense)).toThrow(PluginInputError);
    model.dispose();
    dense.dispose();
  });
});

describe('ie-kd on real MNIST digits', () => {
  const train = mnistSample(0, 2000);
  const heldOut = mnistSample(2000, 2500);
  const teacherSpec: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 };
  let teacher: ModelHandle;

  beforeAll(async () => {
    await initTensorBackend('wasm');
    await tf.setBackend('wasm');
    const model = buildModel(teacherSpec, 1);
    await trainClassifier(model, train, { epochs: 3, batchSize: 64, optimizer: 'adam', learningRate: 2e-3, seed: 1 });
    teacher = { name: 'lenet-teacher', model, spec: teacherSpec };
  });
  afterAll(() => teacher?.model.dispose());

  it('trains a half-width student far above chance, leaves the teacher unchanged and leaks no tensors', async () => {
    const teacherTop1 = (await evaluateClassifier(teacher.model, heldOut)).top1;
    expect(teacherTop1).toBeGreaterThan(0.85);
    const teacherWeights = teacher.model.getWeights().map((w) => Array.from(w.dataSync()));
    const config = ieKdConfigSchema.parse({ epochs: 2, batchSize: 64, learningRate: 2e-3, autoEncoder: { epochs: 1, optimizer: 'adam', learningRate: 2e-3 } });
    const ctx = stageContext(5);
    const before = tf.memory().numTensors;
    const out = await plugin.distill({ teacher, data: train }, config, ctx);
    expect(tf.memory().numTensors).toBe(before + out.student.model.weights.length);
    expect(out.student.spec).toEqual({ ...teacherSpec, width: 0.5 });
    const top1 = (await evaluateClassifier(out.student.model, heldOut)).top1;
    expect(top1).toBeGreaterThan(0.8);
    expect(out.metrics.autoEncoderLoss).toBeGreaterThan(0);
    expect(Number.isFinite(out.metrics.inheritLoss)).toBe(true);
    expect(out.metrics.exploreLoss).toBeLessThanOrEqual(0); // −distance for l1
    // Inheritance pulls the student's inheritance-part factor towards the teacher's factor and
    // exploration pushes its exploration-part factor away: after training the first is the closer.
    expect(out.metrics.inheritLoss).toBeLessThan(-out.metrics.exploreLoss);
    const steps = Math.floor(2000 / 64);
    expect(out.metrics.steps).toBe(2 * steps);
    expect(ctx.reports.length).toBe(3 * steps);
    expect(ctx.reports[ctx.reports.length - 1]).toMatchObject({ step: 3 * steps, total: 3 * steps });
    // The frozen teacher (its moving BN statistics included) is not touched.
    teacher.model.getWeights().forEach((w, i) => expect(Array.from(w.dataSync())).toEqual(teacherWeights[i]));
    out.student.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("with kd.alpha = 1 learns from the teacher's logits alone (the labels given are all wrong)", async () => {
    // Every label is 0: only the teacher's softened logits can teach the student the digits.
    const wrong = { ...train, labels: new Int32Array(train.count) };
    const config = ieKdConfigSchema.parse({
      epochs: 2,
      batchSize: 64,
      learningRate: 2e-3,
      factorChannels: 8,
      kd: { alpha: 1, temperature: 4 },
      autoEncoder: { epochs: 1, optimizer: 'adam', learningRate: 2e-3 },
    });
    const before = tf.memory().numTensors;
    const out = await plugin.distill({ teacher, data: wrong }, config, stageContext(5));
    expect((await evaluateClassifier(out.student.model, heldOut)).top1).toBeGreaterThan(0.7);
    out.student.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('runs the cosine distance with a random split and named layers; the seed fixes the result', async () => {
    const config = ieKdConfigSchema.parse({
      epochs: 1,
      batchSize: 100,
      distance: 'cosine',
      split: 'random',
      factorChannels: 8,
      teacherLayer: 'bn2',
      studentLayer: 'conv2',
      autoEncoder: { epochs: 1, optimizer: 'adam', learningRate: 2e-3 },
    });
    const small = mnistSample(0, 400);
    const a = await plugin.distill({ teacher, data: small }, config, stageContext(3));
    const b = await plugin.distill({ teacher, data: small }, config, stageContext(3));
    expect(a.metrics.trainLoss).toBe(b.metrics.trainLoss);
    expect(a.metrics.inheritLoss).toBeGreaterThanOrEqual(0);
    expect(a.metrics.exploreLoss).toBeGreaterThanOrEqual(0);
    a.student.model.dispose();
    b.student.model.dispose();
  });

  it('resumes inside the auto-encoder phase, between the phases and inside the student phase, ending where an uninterrupted run ends', async () => {
    const config = ieKdConfigSchema.parse({ epochs: 2, batchSize: 64, factorChannels: 8, autoEncoder: { epochs: 1, optimizer: 'adam', learningRate: 2e-3 } });
    const small = mnistSample(0, 256); // 4 steps per epoch: auto-encoder steps 1–4, student steps 5–12
    const saved: Array<{ step: number; state: Buffer }> = [];
    const recorder: StageCheckpoint = { every: 3, load: async () => undefined, save: async (state, step) => void saved.push({ step, state: Buffer.from(state) }) };
    const whole = await plugin.distill({ teacher, data: small }, config, { ...stageContext(8), checkpoint: recorder });
    // Auto-encoder step 3, the phase boundary (step 4), student steps 3 and 6 (stage steps 7 and 10).
    expect(saved.map((s) => s.step)).toEqual([3, 4, 7, 10]);
    const weights = (m: tf.LayersModel) => Promise.all(m.weights.map(async (w) => Array.from(await w.read().data())));
    const expected = await weights(whole.student.model);
    for (const [from, firstReported] of [
      [0, 4],
      [1, 5],
      [2, 8],
    ] as const) {
      const ctx = { ...stageContext(8), checkpoint: { every: 3, load: async () => saved[from].state, save: async () => undefined } satisfies StageCheckpoint };
      const resumed = await plugin.distill({ teacher, data: small }, config, ctx);
      expect(ctx.reports[0].step).toBe(firstReported);
      expect(ctx.reports.at(-1)!.step).toBe(12);
      expect(await weights(resumed.student.model)).toEqual(expected);
      expect(resumed.metrics.trainLoss).toBe(whole.metrics.trainLoss);
      expect(resumed.metrics.autoEncoderLoss).toBe(whole.metrics.autoEncoderLoss);
      resumed.student.model.dispose();
    }
    whole.student.model.dispose();
  });

  it("distils into a student of another architecture whose feature map has another size (the teacher's factor resized to it)", async () => {
    // The LeNet teacher's relu2 is 10×10×16; a half-width ResNet-8 student's last feature map is 7×7×32.
    const config = ieKdConfigSchema.parse({
      student: { architecture: 'resnet-cifar', depth: 8, width: 0.5 },
      epochs: 3,
      batchSize: 64,
      learningRate: 2e-3,
      factorChannels: 8,
      autoEncoder: { epochs: 1, optimizer: 'adam', learningRate: 2e-3 },
    });
    const before = tf.memory().numTensors;
    const out = await plugin.distill({ teacher, data: train }, config, stageContext(4));
    expect(out.student.spec).toEqual({ architecture: 'resnet-cifar', depth: 8, width: 0.5, inputShape: [28, 28, 1], numClasses: 10 });
    expect(withFeatureOutput(out.student.model, findFeatureLayer(out.student.model)).outputs[0].shape).toEqual([null, 7, 7, 32]);
    expect(Number.isFinite(out.metrics.inheritLoss)).toBe(true);
    expect(out.metrics.inheritLoss).toBeLessThan(-out.metrics.exploreLoss);
    // Chance is 0.1; the half-width ResNet-8 is slower to train than LeNet (0.68 after these 3 epochs).
    expect((await evaluateClassifier(out.student.model, heldOut)).top1).toBeGreaterThan(0.6);
    out.student.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses feature maps of different sizes when told to, unknown layers and a student feature map too thin to split', async () => {
    const before = tf.memory().numTensors;
    const small = mnistSample(0, 64);
    // Width 0.05 leaves conv2 one channel: nothing to divide into inheritance and exploration parts.
    await expect(plugin.distill({ teacher, data: small }, ieKdConfigSchema.parse({ student: { width: 0.05 } }), stageContext(1))).rejects.toThrow(/at least 2/);
    await expect(plugin.distill({ teacher, data: small }, ieKdConfigSchema.parse({ studentLayer: 'relu1', factorResize: 'none' }), stageContext(1))).rejects.toThrow(
      /relu1 is 28×28 but the teacher's relu2 is 10×10.*same spatial size/,
    );
    await expect(plugin.distill({ teacher, data: small }, ieKdConfigSchema.parse({ teacherLayer: 'nope' }), stageContext(1))).rejects.toThrow(/has no layer "nope"/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('gatherChannels', () => {
  it('picks the channels in order', async () => {
    await tf.setBackend('cpu');
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
    const g = gatherChannels(x, [2, 0]);
    expect(g.shape).toEqual([1, 1, 2, 2]);
    expect(Array.from(g.dataSync())).toEqual([3, 1, 6, 4]);
    tf.dispose([x, g]);
  });
});
