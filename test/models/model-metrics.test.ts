import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { buildModel } from '../../src/core/models/zoo';
import { countMacs, countParams, countSparsity, measureLatency, modelBytesOnDisk } from '../../src/core/models/model-metrics';
import { saveModelDir } from '../../src/core/models/model-files';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const lenet = () => buildModel({ architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 }, 0);

describe('LeNet-5-BN on 28×28×1 (hand-computed)', () => {
  it('counts parameters', () => {
    const model = lenet();
    // Kernels (no bias before BN): conv1 5·5·1·6, conv2 5·5·6·16, fc1 400·120, fc2 120·84; logits 84·10 + 10 bias.
    const trainableKernels = 150 + 2400 + 48000 + 10080 + 850;
    // BN gamma+beta (trainable) and moving mean+variance (not) on 6, 16, 120, 84 channels.
    const bn = 6 + 16 + 120 + 84;
    expect(countParams(model)).toEqual({ trainable: trainableKernels + 2 * bn, nonTrainable: 2 * bn, total: trainableKernels + 4 * bn });
    expect(countParams(model).total).toBe(62384);
    model.dispose();
  });

  it('counts multiply-accumulates per image', () => {
    const model = lenet();
    const conv1 = 28 * 28 * 5 * 5 * 1 * 6; // 'same' padding keeps 28×28
    const conv2 = 10 * 10 * 5 * 5 * 6 * 16; // valid conv on 14×14 → 10×10
    const dense = 400 * 120 + 120 * 84 + 84 * 10;
    expect(countMacs(model)).toBe(conv1 + conv2 + dense);
    expect(countMacs(model)).toBe(416520);
    model.dispose();
  });

  it('reports the bytes saveModelDir writes: JSON plus 4 bytes per float32 weight', async () => {
    const model = lenet();
    const bytes = await modelBytesOnDisk(model);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'condense-metrics-'));
    expect((await saveModelDir(model, dir)).bytes).toBe(bytes);
    const jsonBytes = (await fs.stat(path.join(dir, 'model.json'))).size;
    expect(bytes - jsonBytes).toBe(4 * 62384);
    await fs.rm(dir, { recursive: true, force: true });
    model.dispose();
  });

  it('measures the fraction of exactly-zero kernel weights (BN and biases excluded)', async () => {
    const model = lenet();
    expect(await countSparsity(model)).toBe(0);
    const conv2 = model.getLayer('conv2');
    const [kernel] = conv2.getWeights();
    const zeroed = tf.tidy(() => tf.mul(kernel, tf.cast(tf.greater(tf.range(0, 2400).reshape(kernel.shape), 1199), 'float32')));
    conv2.setWeights([zeroed]);
    zeroed.dispose();
    const kernels = 150 + 2400 + 48000 + 10080 + 840;
    expect(await countSparsity(model)).toBeCloseTo(1200 / kernels, 12);
    model.dispose();
  });

  it('measures latency as a median over timed runs on the current backend', async () => {
    const model = lenet();
    const r = await measureLatency(model, { batchSize: 2, runs: 3, warmup: 1 });
    expect(r).toMatchObject({ batchSize: 2, runs: 3, backend: 'cpu' });
    expect(r.medianMs).toBeGreaterThan(0);
    model.dispose();
  });
});

describe('MACs of other layers', () => {
  it('ResNet-20 matches the published 40.55M multiply-adds plus its two 1×1 projection shortcuts', () => {
    const model = buildModel({ architecture: 'resnet-cifar', inputShape: [32, 32, 3], numClasses: 10, width: 1, depth: 20 }, 0);
    const published = 40551040; // He et al. option A (identity shortcuts), incl. the 64·10 classifier
    const projections = 16 * 16 * 16 * 32 + 8 * 8 * 32 * 64;
    expect(countMacs(model)).toBe(published + projections);
    model.dispose();
  });

  it('counts depthwise and separable convs and dense layers applied per position', () => {
    const input = tf.input({ shape: [8, 8, 4] });
    let x = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same' }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.separableConv2d({ kernelSize: 3, filters: 5, padding: 'valid' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ units: 3 }).apply(x) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: x });
    const depthwise = 8 * 8 * 3 * 3 * 4 * 2;
    const separable = 6 * 6 * 3 * 3 * 8 + 6 * 6 * 8 * 5;
    const dense = 6 * 6 * 5 * 3;
    expect(countMacs(model)).toBe(depthwise + separable + dense);
    model.dispose();
  });
});
