import * as tf from '@tensorflow/tfjs';
import { buildModel, describeArchitectures } from '../../src/core/models/zoo';
import { ModelSpecError, type ModelSpec } from '../../src/core/models/model-spec';

function paramCounts(model: tf.LayersModel): { trainable: number; nonTrainable: number } {
  const size = (ws: tf.LayerVariable[]) => ws.reduce((s, w) => s + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
  return { trainable: size(model.trainableWeights), nonTrainable: size(model.nonTrainableWeights) };
}

function outputShapeOn(model: tf.LayersModel, batch: number): number[] {
  const shape = model.inputs[0].shape.slice(1) as number[];
  return tf.tidy(() => (model.predict(tf.zeros([batch, ...shape])) as tf.Tensor).shape);
}

const lenet = (width: number, inputShape: [number, number, number] = [28, 28, 1]): ModelSpec => ({
  architecture: 'lenet5-bn', inputShape, numClasses: 10, width,
});

describe('LeNet-5-BN', () => {
  it('has the hand-computed parameter counts at width 1 on 28×28×1', () => {
    const model = buildModel(lenet(1));
    // conv1 5·5·1·6 (no bias, BN follows); conv2 5·5·6·16; fc1 (5·5·16)·120; fc2 120·84; logits 84·10 + 10.
    const kernels = 5 * 5 * 1 * 6 + 5 * 5 * 6 * 16 + 400 * 120 + 120 * 84 + (84 * 10 + 10);
    // Each BN: gamma + beta trainable, moving mean + variance not.
    const bnChannels = 6 + 16 + 120 + 84;
    expect(paramCounts(model)).toEqual({ trainable: kernels + 2 * bnChannels, nonTrainable: 2 * bnChannels });
    expect(kernels + 4 * bnChannels).toBe(62384);
    expect(outputShapeOn(model, 3)).toEqual([3, 10]);
    model.dispose();
  });

  it('halves every channel count at width 0.5', () => {
    const model = buildModel(lenet(0.5));
    // 3, 8, 60, 42 channels/units; flatten is 5·5·8 = 200.
    const kernels = 5 * 5 * 1 * 3 + 5 * 5 * 3 * 8 + 200 * 60 + 60 * 42 + (42 * 10 + 10);
    const bnChannels = 3 + 8 + 60 + 42;
    expect(paramCounts(model)).toEqual({ trainable: kernels + 2 * bnChannels, nonTrainable: 2 * bnChannels });
    expect(model.getLayer('conv1').outputShape).toEqual([null, 28, 28, 3]);
    expect(model.getLayer('flatten').outputShape).toEqual([null, 200]);
    model.dispose();
  });

  it('takes 32×32×3 images with a valid first conv (32 → 28 → 14 → 10 → 5)', () => {
    const model = buildModel(lenet(1, [32, 32, 3]));
    expect(model.getLayer('conv1').outputShape).toEqual([null, 28, 28, 6]);
    expect(model.getLayer('flatten').outputShape).toEqual([null, 400]);
    expect(outputShapeOn(model, 2)).toEqual([2, 10]);
    model.dispose();
  });

  it('builds the same weights from the same seed and different ones from another', () => {
    const read = (m: tf.LayersModel) => Array.from(m.getLayer('conv2').getWeights()[0].dataSync());
    const a = buildModel(lenet(1), 7);
    const b = buildModel(lenet(1), 7);
    const c = buildModel(lenet(1), 8);
    expect(read(a)).toEqual(read(b));
    expect(read(a)).not.toEqual(read(c));
    [a, b, c].forEach((m) => m.dispose());
  });
});

describe('CIFAR ResNet', () => {
  it('ResNet-20 has three stages of three blocks, projection shortcuts, and the hand-computed parameter count', () => {
    const model = buildModel({ architecture: 'resnet-cifar', inputShape: [32, 32, 3], numClasses: 10, width: 1, depth: 20 });
    const conv = (k: number, cin: number, cout: number) => k * k * cin * cout;
    const kernels =
      conv(3, 3, 16) +
      6 * conv(3, 16, 16) + // stage 1: 3 blocks × 2 convs
      conv(3, 16, 32) + conv(3, 32, 32) + conv(1, 16, 32) + 4 * conv(3, 32, 32) + // stage 2
      conv(3, 32, 64) + conv(3, 64, 64) + conv(1, 32, 64) + 4 * conv(3, 64, 64) + // stage 3
      64 * 10 + 10;
    const bnChannels = 16 + 6 * 16 + (7 * 32) + (7 * 64); // stem, 2 per block, 1 per shortcut
    expect(paramCounts(model)).toEqual({ trainable: kernels + 2 * bnChannels, nonTrainable: 2 * bnChannels });
    expect(model.getLayer('stage3_block3_relu2').outputShape).toEqual([null, 8, 8, 64]);
    expect(() => model.getLayer('stage1_block1_shortcut_conv')).toThrow();
    expect(model.getLayer('stage2_block1_shortcut_conv').outputShape).toEqual([null, 16, 16, 32]);
    expect(outputShapeOn(model, 2)).toEqual([2, 10]);
    model.dispose();
  });

  it('scales with depth and width', () => {
    const model = buildModel({ architecture: 'resnet-cifar', inputShape: [28, 28, 1], numClasses: 5, width: 0.5, depth: 8 });
    expect(model.getLayer('stage3_block1_relu2').outputShape).toEqual([null, 7, 7, 32]);
    expect(() => model.getLayer('stage1_block2_conv1')).toThrow();
    expect(outputShapeOn(model, 1)).toEqual([1, 5]);
    model.dispose();
  });

  it.each([19, 21, 2, 0, 20.5])('rejects depth %p with a message naming 6n+2', (depth) => {
    expect(() => buildModel({ architecture: 'resnet-cifar', inputShape: [32, 32, 3], numClasses: 10, width: 1, depth })).toThrow(
      /6n\+2/,
    );
  });
});

describe('ResNet-18/34 (basic blocks, CIFAR)', () => {
  const resnetBasic = (patch: Partial<ModelSpec> = {}): ModelSpec => ({
    architecture: 'resnet-basic', inputShape: [32, 32, 3], numClasses: 10, width: 1, ...patch,
  });
  /**
   * Builds with zero conv kernels instead of He-normal ones: counts and shapes are the same, and
   * sampling 11M (ResNet-18) or 21M (ResNet-34) truncated normals takes seconds inside jest.
   */
  const buildWithZeroKernels = (spec: ModelSpec): tf.LayersModel => {
    const heNormal = jest.spyOn(tf.initializers, 'heNormal').mockImplementation(() => tf.initializers.zeros());
    try {
      return buildModel(spec);
    } finally {
      heNormal.mockRestore();
    }
  };

  it('ResNet-18 at width 1 has the hand-computed parameter count, which is PyTorch\'s kuangliu ResNet18 (11,173,962)', () => {
    const model = buildWithZeroKernels(resnetBasic()); // depth defaults to 18
    const conv = (k: number, cin: number, cout: number) => k * k * cin * cout;
    const kernels =
      conv(3, 3, 64) +
      4 * conv(3, 64, 64) + // stage 1: 2 blocks × 2 convs, identity shortcuts
      conv(3, 64, 128) + 3 * conv(3, 128, 128) + conv(1, 64, 128) + // stage 2
      conv(3, 128, 256) + 3 * conv(3, 256, 256) + conv(1, 128, 256) + // stage 3
      conv(3, 256, 512) + 3 * conv(3, 512, 512) + conv(1, 256, 512) + // stage 4
      512 * 10 + 10;
    const bnChannels = 64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512; // stem, 2 per block, 1 per shortcut
    // PyTorch's sum(p.numel() for p in model.parameters()) counts BN's γ and β but not its running statistics.
    expect(kernels + 2 * bnChannels).toBe(11_173_962);
    expect(paramCounts(model)).toEqual({ trainable: 11_173_962, nonTrainable: 2 * bnChannels });
    expect(model.name).toBe('resnet18-basic-w1');
    expect(model.getLayer('stem_conv').outputShape).toEqual([null, 32, 32, 64]);
    expect(() => model.getLayer('stage1_block1_shortcut_conv')).toThrow();
    expect(() => model.getLayer('stage1_block3_conv1')).toThrow();
    expect(model.getLayer('stage2_block1_shortcut_conv').outputShape).toEqual([null, 16, 16, 128]);
    expect(model.getLayer('stage4_block2_relu2').outputShape).toEqual([null, 4, 4, 512]);
    expect(model.outputs[0].shape).toEqual([null, 10]);
    model.dispose();
  });

  it('ResNet-34 has 3-4-6-3 blocks and PyTorch\'s kuangliu ResNet34 parameter count (21,282,122)', () => {
    const model = buildWithZeroKernels(resnetBasic({ depth: 34 }));
    expect(paramCounts(model).trainable).toBe(21_282_122);
    expect(model.getLayer('stage3_block6_relu2').outputShape).toEqual([null, 8, 8, 256]);
    expect(() => model.getLayer('stage4_block4_conv1')).toThrow();
    model.dispose();
  });

  it('gives finite logits [batch, classes] at width 0.125', () => {
    const model = buildModel(resnetBasic({ width: 0.125, numClasses: 7 }), 3);
    expect(model.getLayer('stage4_block2_relu2').outputShape).toEqual([null, 4, 4, 64]);
    const logits = tf.tidy(() => Array.from((model.predict(tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 5)) as tf.Tensor).dataSync()));
    expect(logits).toHaveLength(2 * 7);
    expect(logits.every(Number.isFinite)).toBe(true);
    expect(new Set(logits).size).toBeGreaterThan(1); // real (He-normal) weights, not the zero kernels of the count tests
    expect(outputShapeOn(model, 2)).toEqual([2, 7]);
    model.dispose();
  });

  it.each([20, 50, 17, 101, 18.5])('rejects depth %p with a message naming 18 and 34', (depth) => {
    expect(() => buildModel(resnetBasic({ depth }))).toThrow(ModelSpecError);
    expect(() => buildModel(resnetBasic({ depth }))).toThrow(/resnet-basic depth must be one of 18, 34; got /);
  });
});

describe('VGG-BN', () => {
  it('has blocks of two conv-BN-ReLU and a pool with 32/64/128 × width channels', () => {
    const model = buildModel({ architecture: 'vgg-bn', inputShape: [32, 32, 3], numClasses: 10, width: 0.5 });
    expect(model.getLayer('block1_conv2').outputShape).toEqual([null, 32, 32, 16]);
    expect(model.getLayer('block2_conv1').outputShape).toEqual([null, 16, 16, 32]);
    expect(model.getLayer('block3_pool').outputShape).toEqual([null, 4, 4, 64]);
    expect(() => model.getLayer('block4_conv1')).toThrow();
    expect(outputShapeOn(model, 2)).toEqual([2, 10]);
    model.dispose();
  });

  it('rejects more blocks than the image can be pooled', () => {
    expect(() => buildModel({ architecture: 'vgg-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1, depth: 5 })).toThrow(ModelSpecError);
  });
});

describe('spec validation', () => {
  it.each<[string, Partial<ModelSpec>, RegExp]>([
    ['unknown architecture', { architecture: 'alexnet' as never }, /unknown architecture "alexnet"/],
    ['small input', { inputShape: [16, 16, 1] }, /at least 28×28/],
    ['four channels', { inputShape: [28, 28, 4] }, /channels must be 1 .* or 3/],
    ['one class', { numClasses: 1 }, /numClasses/],
    ['zero width', { width: 0 }, /width/],
  ])('rejects %s', (_, patch, message) => {
    const spec = { ...lenet(1), ...patch } as ModelSpec;
    expect(() => buildModel(spec)).toThrow(ModelSpecError);
    expect(() => buildModel(spec)).toThrow(message);
  });

  it('lists every architecture', () => {
    expect(describeArchitectures().map((a) => a.architecture)).toEqual(['lenet5-bn', 'resnet-cifar', 'resnet-basic', 'vgg-bn']);
  });
});
