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
    expect(describeArchitectures().map((a) => a.architecture)).toEqual(['lenet5-bn', 'resnet-cifar', 'vgg-bn']);
  });
});
