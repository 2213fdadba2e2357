import * as tf from '@tensorflow/tfjs';
import type { ModelHandle, ModelSpec } from '../../src/core/models/model-spec';
import { buildModel } from '../../src/core/models/zoo';
import { PluginInputError, StageCancelledError } from '../../src/core/plugins/contracts';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { evaluateClassifier } from '../../src/core/training/evaluator';
import { trainClassifier } from '../../src/core/training/trainer';
import { kdConfigSchema, plugin, studentSpec } from '../../src/plugins/kd';
import { plugin as noise } from '../../src/plugins/noise';
import { mnistSample } from '../training/mnist-sample';
import { stageContext, tinyConvNet } from './support/stage';

const teacherSpec: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 };

describe('studentSpec', () => {
  it("takes the teacher's spec with the configured overrides", () => {
    const teacher = { name: 't', model: undefined as unknown as tf.LayersModel, spec: teacherSpec };
    expect(studentSpec(teacher, { width: 0.5 })).toEqual({ ...teacherSpec, width: 0.5 });
    const resnet = { ...teacher, spec: { architecture: 'resnet-cifar', inputShape: [32, 32, 3], numClasses: 10, width: 1, depth: 56 } as ModelSpec };
    expect(studentSpec(resnet, { width: 1, depth: 20 }).depth).toBe(20);
    expect(studentSpec(resnet, { width: 1 }).depth).toBe(56);
    // A different architecture does not inherit the teacher's depth.
    expect(studentSpec(resnet, { width: 1, architecture: 'vgg-bn' })).toMatchObject({ architecture: 'vgg-bn', depth: 3 });
    expect(() => studentSpec(resnet, { width: 1, depth: 21 })).toThrow(PluginInputError);
  });

  it('needs student.architecture for an imported teacher without a spec, and reads its shapes from the model', async () => {
    await tf.setBackend('cpu');
    const model = tinyConvNet([28, 28, 1], 10, 1);
    expect(() => studentSpec({ name: 'imported', model }, { width: 0.5 })).toThrow(/set student.architecture/);
    expect(studentSpec({ name: 'imported', model }, { width: 0.5, architecture: 'lenet5-bn' })).toEqual({ ...teacherSpec, width: 0.5 });
    model.dispose();
  });
});

describe('kd on real MNIST digits', () => {
  const train = mnistSample(0, 2000);
  const heldOut = mnistSample(2000, 2500);
  let teacher: ModelHandle;
  let teacherTop1: number;

  beforeAll(async () => {
    await initTensorBackend('wasm');
    await tf.setBackend('wasm');
    const model = buildModel(teacherSpec, 1);
    await trainClassifier(model, train, { epochs: 3, batchSize: 64, optimizer: 'adam', learningRate: 2e-3, seed: 1 });
    teacher = { name: 'lenet-teacher', model, spec: teacherSpec };
    teacherTop1 = (await evaluateClassifier(model, heldOut)).top1;
  });
  afterAll(() => teacher?.model.dispose());

  it('distils the teacher into a half-width student that is far above chance on held-out digits, without leaking tensors', async () => {
    expect(teacherTop1).toBeGreaterThan(0.85);
    const config = kdConfigSchema.parse({ epochs: 3, batchSize: 64, learningRate: 2e-3 });
    const ctx = stageContext(7);
    const before = tf.memory().numTensors;
    const out = await plugin.distill({ teacher, data: train }, config, ctx);
    const studentTensors = out.student.model.weights.length;
    expect(tf.memory().numTensors).toBe(before + studentTensors);

    expect(out.student.spec).toEqual({ ...teacherSpec, width: 0.5 });
    const studentTop1 = (await evaluateClassifier(out.student.model, heldOut)).top1;
    expect(studentTop1).toBeGreaterThan(0.8);
    expect(out.metrics.epochs).toBe(3);
    expect(out.metrics.steps).toBe(3 * Math.floor(2000 / 64));
    expect(Number.isFinite(out.metrics.trainLoss)).toBe(true);
    expect(out.metrics.trainSeconds).toBeGreaterThan(0);
    expect(ctx.reports.length).toBe(out.metrics.steps);
    expect(ctx.reports[ctx.reports.length - 1]).toMatchObject({ step: out.metrics.steps, total: out.metrics.steps });
    out.student.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('uses the teacher logits stored with a synthetic set (noise → kd) and the teacher on augmented batches', async () => {
    const synthetic = (await noise.synthesize({ teacher }, { count: 128, batchSize: 64, mean: 0.5, std: 0.25 }, stageContext(3))).dataset;
    // Scrambled stored logits must change the result: proof that they, not a fresh teacher pass, are used.
    const scrambled = { ...synthetic, teacherLogits: synthetic.teacherLogits!.map((v, i) => synthetic.teacherLogits![(i * 7) % synthetic.teacherLogits!.length] - v) };
    const config = kdConfigSchema.parse({ epochs: 1, batchSize: 32, alpha: 1 });
    const a = await plugin.distill({ teacher, data: synthetic }, config, stageContext(9));
    const b = await plugin.distill({ teacher, data: scrambled }, config, stageContext(9));
    expect(a.metrics.trainLoss).not.toBeCloseTo(b.metrics.trainLoss, 3);
    const before = tf.memory().numTensors;
    const c = await plugin.distill({ teacher, data: synthetic }, kdConfigSchema.parse({ epochs: 1, batchSize: 32, augment: { cropPadding: 2 } }), stageContext(9));
    expect(tf.memory().numTensors).toBe(before + c.student.model.weights.length);
    expect(Number.isFinite(c.metrics.trainLoss)).toBe(true);
    [a, b, c].forEach((o) => o.student.model.dispose());
  });

  it('refuses data of the wrong shape and stops when cancelled', async () => {
    const wrong = { ...train, shape: [14, 56, 1] as [number, number, number] };
    await expect(plugin.distill({ teacher, data: wrong }, kdConfigSchema.parse({}), stageContext(1))).rejects.toThrow(/training images are 14×56×1/);
    const controller = new AbortController();
    controller.abort();
    const before = tf.memory().numTensors;
    await expect(plugin.distill({ teacher, data: train }, kdConfigSchema.parse({ epochs: 1 }), stageContext(1, controller.signal))).rejects.toBeInstanceOf(StageCancelledError);
    expect(tf.memory().numTensors).toBe(before);
  });
});
