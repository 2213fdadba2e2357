import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../../src/core/models/zoo';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { PluginInputError, type StageCheckpoint } from '../../src/core/plugins/contracts';
import { CheckpointFormatError } from '../../src/core/checkpoints/framed-buffer';
import { cloneLayersModel, countZeros, cubicSparsity, globalMagnitudeMasks, magnitudeConfigSchema, plugin, prunableLayers } from '../../src/plugins/magnitude';
import { mnistSample } from '../training/mnist-sample';
import { predictLogits, stageContext, tinyConvNet } from './support/stage';

// wasm (with the project's training kernels) so the fine-tuning test runs in seconds.
beforeAll(async () => {
  await initTensorBackend('wasm');
  await tf.setBackend('wasm');
});

const shape: [number, number, number] = [8, 8, 1];

async function weightValues(model: tf.LayersModel): Promise<Float32Array[]> {
  return Promise.all(model.weights.map(async (w) => (await w.read().data()) as Float32Array));
}

describe('globalMagnitudeMasks', () => {
  it('zeroes exactly round(sparsity·total) weights, the smallest over all kernels, ties broken by position', () => {
    const a = new Float32Array([0.5, -0.1, 0.3]);
    const b = new Float32Array([-0.2, 0.3, 0.05, 0.9]);
    const { masks, threshold } = globalMagnitudeMasks([a, b], 3 / 7);
    expect(Array.from(masks[0])).toEqual([1, 0, 1]);
    expect(Array.from(masks[1])).toEqual([0, 1, 0, 1]);
    expect(threshold).toBeCloseTo(0.2, 6);
    // Ties: four equal magnitudes, half pruned, first ones first.
    const tie = globalMagnitudeMasks([new Float32Array([1, -1, 1, -1])], 0.5);
    expect(Array.from(tie.masks[0])).toEqual([0, 0, 1, 1]);
    expect(Array.from(globalMagnitudeMasks([a], 0).masks[0])).toEqual([1, 1, 1]);
  });
});

describe('magnitude pruning plugin', () => {
  const model = tinyConvNet(shape, 3, 21);
  const handle = { name: 'tiny', model };
  afterAll(() => model.dispose());

  it('prunes conv and hidden dense kernels to the target sparsity with one global threshold', async () => {
    const originalWeights = await weightValues(model);
    const before = tf.memory().numTensors;
    const config = magnitudeConfigSchema.parse({ sparsity: 0.6 });
    const out = await plugin.prune({ model: handle }, config, stageContext(1));

    // Input model unchanged.
    const after = await weightValues(model);
    after.forEach((w, i) => expect(Buffer.from(w.buffer).equals(Buffer.from(originalWeights[i].buffer))).toBe(true));

    // Prunable: the conv kernel and the hidden dense kernel, not the classifier.
    const layers = prunableLayers(model, config);
    expect(layers.map((l) => l.getClassName())).toEqual(['Conv2D', 'Dense']);
    const names = layers.map((l) => l.weights[0].originalName);
    expect(Object.keys(out.model.masks!).sort()).toEqual([...names].sort());

    const total = layers.reduce((n, l) => n + l.weights[0].shape.reduce((a, b) => a! * b!, 1)!, 0);
    expect(out.metrics.prunableParams).toBe(total);
    expect(Math.abs(out.metrics.sparsity - 0.6)).toBeLessThanOrEqual(1 / total);

    // Every pruned weight is no larger than every kept one (global threshold), masks match zeros,
    // kept weights keep their values.
    let maxPruned = 0;
    let minKept = Infinity;
    const prunedModel = out.model.model;
    for (const layer of layers) {
      const name = layer.weights[0].originalName;
      const mask = out.model.masks![name];
      const original = (await layer.weights[0].read().data()) as Float32Array;
      const pruned = (await prunedModel.getLayer(layer.name).weights[0].read().data()) as Float32Array;
      expect(mask.length).toBe(original.length);
      for (let i = 0; i < mask.length; i++) {
        if (mask[i]) {
          minKept = Math.min(minKept, Math.abs(original[i]));
          expect(pruned[i]).toBe(original[i]);
        } else {
          maxPruned = Math.max(maxPruned, Math.abs(original[i]));
          expect(pruned[i]).toBe(0);
        }
      }
    }
    expect(maxPruned).toBeLessThanOrEqual(minKept);

    // The classifier and biases are untouched.
    const classifier = model.layers[model.layers.length - 1];
    const prunedClassifier = prunedModel.getLayer(classifier.name);
    expect(Array.from(await prunedClassifier.weights[0].read().data())).toEqual(Array.from(await classifier.weights[0].read().data()));

    // Per-layer log adds up; metrics agree with a count of zeros.
    const kept = out.transformLog.reduce((n, row) => n + (row.kept as number), 0);
    expect(out.transformLog.map((row) => row.layer)).toEqual(layers.map((l) => l.name));
    expect(1 - kept / total).toBeCloseTo(out.metrics.sparsity, 10);
    const zeros = await countZeros(prunedModel);
    expect(out.metrics.params).toBe(zeros.params);
    expect(out.metrics.nonzeroParams).toBe(zeros.params - zeros.zeros);
    expect(out.metrics.zeroFraction).toBeCloseTo(zeros.zeros / zeros.params, 10);

    prunedModel.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('with sparsity 0 predicts exactly what the original predicts', async () => {
    const out = await plugin.prune({ model: handle }, magnitudeConfigSchema.parse({ sparsity: 0 }), stageContext(1));
    const images = new Float32Array(4 * 64).map((_, i) => (i * 37) % 101 / 100);
    expect(Array.from(await predictLogits(out.model.model, images, shape))).toEqual(Array.from(await predictLogits(model, images, shape)));
    expect(out.metrics.sparsity).toBe(0);
    out.model.model.dispose();
  });

  it('includes the classifier when asked, excludes dense kernels when asked, and keeps earlier masks', async () => {
    expect(prunableLayers(model, { includeDense: true, includeClassifier: true }).length).toBe(3);
    expect(prunableLayers(model, { includeDense: false, includeClassifier: false }).map((l) => l.getClassName())).toEqual(['Conv2D']);

    const first = await plugin.prune({ model: handle }, magnitudeConfigSchema.parse({ sparsity: 0.5, includeClassifier: true }), stageContext(1));
    // A lower second target cannot bring back what the first stage masked.
    const second = await plugin.prune({ model: first.model }, magnitudeConfigSchema.parse({ sparsity: 0.2, includeClassifier: true }), stageContext(1));
    for (const [name, mask] of Object.entries(first.model.masks!)) {
      const next = second.model.masks![name];
      for (let i = 0; i < mask.length; i++) if (!mask[i]) expect(next[i]).toBe(0);
    }
    expect(second.metrics.sparsity).toBeCloseTo(first.metrics.sparsity, 10);
    first.model.model.dispose();
    second.model.model.dispose();
  });

  it('cloneLayersModel gives independent weights', async () => {
    const clone = await cloneLayersModel(model);
    const layer = clone.layers.find((l) => l.getClassName() === 'Conv2D')!;
    const zeros = tf.zerosLike(layer.getWeights()[0]);
    layer.setWeights([zeros, ...layer.getWeights().slice(1)]);
    zeros.dispose();
    const originalKernel = await model.getLayer(layer.name).weights[0].read().data();
    expect(Array.from(originalKernel).some((v) => v !== 0)).toBe(true);
    clone.dispose();
  });
});

describe('magnitude pruning of a zoo model', () => {
  it('prunes LeNet-5-BN conv and hidden dense kernels, not BatchNorm or the classifier', async () => {
    const spec = { architecture: 'lenet5-bn' as const, inputShape: [28, 28, 1] as [number, number, number], numClasses: 10, width: 0.5 };
    const model = buildModel(spec, 3);
    const out = await plugin.prune({ model: { name: 'lenet', model, spec } }, magnitudeConfigSchema.parse({ sparsity: 0.8 }), stageContext(1));
    const classes = out.transformLog.map((row) => model.getLayer(row.layer as string).getClassName());
    expect(classes).toEqual(['Conv2D', 'Conv2D', 'Dense', 'Dense']);
    expect(out.model.spec).toEqual(spec);
    const total = out.metrics.prunableParams;
    expect(Math.abs(out.metrics.sparsity - 0.8)).toBeLessThanOrEqual(1 / total);
    model.dispose();
    out.model.model.dispose();
  });
});

describe('gradual magnitude pruning', () => {
  it('follows the cubic schedule s_k = s_f (1 − (1 − k/n)³)', () => {
    expect(cubicSparsity(0, 4, 0, 0.8)).toBeCloseTo(0, 12);
    expect(cubicSparsity(1, 4, 0, 0.8)).toBeCloseTo(0.8 * (1 - 0.75 ** 3), 12);
    expect(cubicSparsity(2, 4, 0, 0.8)).toBeCloseTo(0.8 * (1 - 0.125), 12);
    expect(cubicSparsity(4, 4, 0, 0.8)).toBeCloseTo(0.8, 12);
  });

  it('needs data', async () => {
    const model = tinyConvNet(shape, 3, 1);
    await expect(plugin.prune({ model: { name: 'm', model } }, magnitudeConfigSchema.parse({ schedule: 'gradual' }), stageContext(1))).rejects.toBeInstanceOf(PluginInputError);
    model.dispose();
  });

  it('reaches the target on real digits with fine-tuning, keeping pruned weights at zero', async () => {
    const data = mnistSample(0, 256);
    const model = tinyConvNet([28, 28, 1], 10, 4);
    const before = tf.memory().numTensors;
    const config = magnitudeConfigSchema.parse({ schedule: 'gradual', sparsity: 0.75, steps: 3, fineTune: { epochs: 1, batchSize: 64 } });
    const ctx = stageContext(2);
    const out = await plugin.prune({ model: { name: 'tiny', model }, data }, config, ctx);
    expect(ctx.reports.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    const reached = ctx.reports.filter((r) => r.step % 2 === 1).map((r) => r.metrics!.sparsity);
    const total = out.metrics.prunableParams;
    [1, 2, 3].forEach((k, i) => expect(Math.abs(reached[i] - cubicSparsity(k, 3, 0, 0.75))).toBeLessThanOrEqual(1 / total));
    expect(Math.abs(out.metrics.sparsity - 0.75)).toBeLessThanOrEqual(1 / total);
    expect(Number.isFinite(out.metrics.fineTuneLoss)).toBe(true);

    // Fine-tuning changed the kept weights but not the pruned ones.
    let changed = false;
    for (const layer of prunableLayers(model, config)) {
      const name = layer.weights[0].originalName;
      const mask = out.model.masks![name];
      const original = await layer.weights[0].read().data();
      const pruned = await out.model.model.getLayer(layer.name).weights[0].read().data();
      for (let i = 0; i < mask.length; i++) {
        if (!mask[i]) expect(Math.abs(pruned[i])).toBe(0); // -0 after the trainer's mask multiply
        else if (pruned[i] !== original[i]) changed = true;
      }
    }
    expect(changed).toBe(true);
    out.model.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
  it('resumes after the last completed round of a checkpoint and ends exactly where an uninterrupted run ends', async () => {
    const data = mnistSample(0, 128);
    const config = magnitudeConfigSchema.parse({ schedule: 'gradual', sparsity: 0.6, steps: 3, fineTune: { epochs: 1, batchSize: 64 } });
    // Keeps every saved state, as the run executor's checkpoint table keeps the latest.
    const saved: Array<{ step: number; state: Buffer }> = [];
    const recorder: StageCheckpoint = { every: 1, load: async () => undefined, save: async (state, step) => void saved.push({ step, state: Buffer.from(state) }) };
    const model = tinyConvNet([28, 28, 1], 10, 7);
    const whole = await plugin.prune({ model: { name: 'tiny', model }, data }, config, { ...stageContext(5), checkpoint: recorder });
    // A checkpoint after each round but the last (reported steps 2 and 4 of 6).
    expect(saved.map((s) => s.step)).toEqual([2, 4]);

    // A new process picks the stage up from the round-1 checkpoint: it must not redo round 1.
    const before = tf.memory().numTensors;
    const ctx = { ...stageContext(5), checkpoint: { every: 1, load: async () => saved[0].state, save: async () => undefined } satisfies StageCheckpoint };
    const resumed = await plugin.prune({ model: { name: 'tiny', model }, data }, config, ctx);
    expect(ctx.reports.map((r) => r.step)).toEqual([3, 4, 5, 6]);
    const a = await weightValues(whole.model.model);
    const b = await weightValues(resumed.model.model);
    a.forEach((values, i) => expect(Array.from(b[i])).toEqual(Array.from(values)));
    expect(resumed.metrics).toEqual(whole.metrics);
    expect(resumed.model.masks).toEqual(whole.model.masks);
    resumed.model.model.dispose();
    expect(tf.memory().numTensors).toBe(before);

    // A checkpoint of another schedule is refused, not silently used.
    const other = magnitudeConfigSchema.parse({ ...config, steps: 4 });
    await expect(plugin.prune({ model: { name: 'tiny', model }, data }, other, { ...stageContext(5), checkpoint: { every: 1, load: async () => saved[0].state, save: async () => undefined } })).rejects.toBeInstanceOf(
      CheckpointFormatError,
    );
    whole.model.model.dispose();
    model.dispose();
  });
});
