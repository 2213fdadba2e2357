import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../../src/core/models/zoo';
import { SeededRandom } from '../../src/core/random';
import { jitterAndFlip } from '../../src/core/synthesis/image-priors';
import { ACS_REFERENCE_SCALE, channelScaledImage, generatorPixels, initialAlpha } from '../../src/plugins/natural-inversion/channel-scaling';
import { featureExtractor, FeaturePyramidError, findFeaturePyramid } from '../../src/plugins/natural-inversion/feature-pyramid';
import { FeatureTransferPyramid } from '../../src/plugins/natural-inversion/ftp';
import { ConditionalGenerator } from '../../src/plugins/natural-inversion/generator';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function randomTensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  const random = new SeededRandom(seed);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * random.gaussian()), shape);
}

describe('ConditionalGenerator', () => {
  it.each([
    [[28, 28, 1], 10],
    [[32, 32, 3], 3],
    [[10, 10, 1], 100],
    [[13, 9, 3], 2],
  ] as Array<[[number, number, number], number]>)('makes images of shape %j for %i classes', (imageShape, numClasses) => {
    const before = tf.memory().numTensors;
    const generator = new ConditionalGenerator({ latentSize: 5, numClasses, imageShape, channels: 8 }, new SeededRandom(1));
    const n = 3;
    const z = randomTensor([n, 5], 2) as tf.Tensor2D;
    const targets = tf.tensor1d([0, numClasses - 1, 1], 'int32');
    const out = generator.apply(z, targets);
    expect(out.shape).toEqual([n, ...imageShape]);
    // Class-conditional: the same latent with another target gives another image.
    const otherTargets = tf.tensor1d([1, 0, 0], 'int32');
    const other = generator.apply(z, otherTargets);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(out, other))).dataSync()[0])).toBeGreaterThan(1e-4);
    // 3 × (conv kernel + bias), dense kernel + bias, 3 BN (γ, β).
    expect(generator.variables).toHaveLength(14);
    tf.dispose([z, targets, out, other, otherTargets]);
    generator.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("normalises with batch statistics (training-mode BN): an image's output depends on the rest of its batch", () => {
    const generator = new ConditionalGenerator({ latentSize: 4, numClasses: 2, imageShape: [8, 8, 1], channels: 8 }, new SeededRandom(3));
    tf.tidy(() => {
      const z = randomTensor([4, 4], 4) as tf.Tensor2D;
      const targets = tf.tensor1d([0, 1, 0, 1], 'int32');
      const whole = generator.apply(z, targets);
      const firstTwo = generator.apply(tf.slice(z, [0, 0], [2, 4]), tf.slice(targets, [0], [2]));
      const again = generator.apply(z, targets);
      expect(tf.max(tf.abs(tf.sub(whole, again))).dataSync()[0]).toBe(0);
      expect(tf.max(tf.abs(tf.sub(tf.slice(whole, [0, 0, 0, 0], [2, 8, 8, 1]), firstTwo))).dataSync()[0]).toBeGreaterThan(1e-3);
    });
    generator.dispose();
  });
});

describe('findFeaturePyramid', () => {
  it('picks the last map before each shrink of LeNet-5-BN, input-sized scale included', () => {
    const model = buildModel({ architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 }, 1);
    const levels = findFeaturePyramid(model);
    expect(levels).toEqual([
      { layerName: 'relu1', height: 28, width: 28, channels: 6 },
      { layerName: 'pool1', height: 14, width: 14, channels: 6 },
      { layerName: 'relu2', height: 10, width: 10, channels: 16 },
      { layerName: 'pool2', height: 5, width: 5, channels: 16 },
    ]);
    model.dispose();
  });

  it('picks the last block output of each stage of a CIFAR ResNet-8', () => {
    const model = buildModel({ architecture: 'resnet-cifar', depth: 8, inputShape: [32, 32, 3], numClasses: 10, width: 1 }, 1);
    expect(findFeaturePyramid(model)).toEqual([
      { layerName: 'stage1_block1_relu2', height: 32, width: 32, channels: 16 },
      { layerName: 'stage2_block1_relu2', height: 16, width: 16, channels: 32 },
      { layerName: 'stage3_block1_relu2', height: 8, width: 8, channels: 64 },
    ]);
    model.dispose();
  });

  it('refuses a model without 4-D intermediate outputs', () => {
    const model = tf.sequential({
      layers: [tf.layers.flatten({ inputShape: [6, 6, 1] }), tf.layers.dense({ units: 8 }), tf.layers.batchNormalization(), tf.layers.dense({ units: 3 })],
    });
    expect(() => findFeaturePyramid(model)).toThrow(FeaturePyramidError);
    expect(() => findFeaturePyramid(model)).toThrow(/no layer with a 4-D/);
    model.dispose();
  });
});

describe('featureExtractor', () => {
  it("returns the teacher's maps in inference mode, with a zero gradient and no teacher backward", () => {
    const model = buildModel({ architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 0.5 }, 2);
    const levels = findFeaturePyramid(model);
    const extract = featureExtractor(model, levels);
    const x = tf.tidy(() => tf.clipByValue(tf.add(randomTensor([2, 28, 28, 1], 5, 0.3), 0.5), 0, 1)) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const maps = extract(x);
    expect(maps.map((m) => m.shape)).toEqual(levels.map((l) => [2, l.height, l.width, l.channels]));
    const reference = tf.model({ inputs: model.inputs, outputs: model.getLayer('relu2').output as tf.SymbolicTensor }).predict(x) as tf.Tensor;
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(maps[2], reference))).dataSync()[0])).toBeLessThan(1e-5);
    tf.dispose([...maps, reference]);
    expect(tf.memory().numTensors).toBe(before);

    // d/dx Σ maps is zero: the maps are constants to the optimisation.
    const grad = tf.grad((input: tf.Tensor) => tf.addN(extract(input as tf.Tensor4D).map((m) => tf.sum(m))) as tf.Scalar)(x);
    expect(tf.max(tf.abs(grad)).dataSync()[0]).toBe(0);
    tf.dispose([grad, x]);
    model.dispose();
  });
});

describe('FeatureTransferPyramid', () => {
  it.each([
    ['lenet5-bn', [28, 28, 1], undefined],
    ['resnet-cifar', [32, 32, 3], 8],
  ] as const)("decodes %s's pyramid to an image-shaped output that depends on the image and the features", (architecture, inputShape, depth) => {
    const model = buildModel({ architecture, inputShape: [...inputShape], numClasses: 10, width: 0.5, depth }, 3);
    const levels = findFeaturePyramid(model);
    const extract = featureExtractor(model, levels);
    const ftp = new FeatureTransferPyramid(levels, [...inputShape], new SeededRandom(4));
    const image = randomTensor([2, ...inputShape], 6) as tf.Tensor4D;
    const features = extract(generatorPixels(image));
    const out = ftp.apply(image, features);
    expect(out.shape).toEqual([2, ...inputShape]);
    // Gradients reach every FTP variable (the top-down path, the lateral maps' convs and the image path).
    const { grads } = tf.variableGrads(() => tf.sum(tf.square(ftp.apply(image, features))) as tf.Scalar, ftp.variables);
    for (const v of ftp.variables) expect(tf.max(tf.abs(grads[v.name])).dataSync()[0]).toBeGreaterThan(0);
    // 2 convs per top-down step (levels − 1 steps), to-image and mix convs, each kernel + bias.
    expect(ftp.variables).toHaveLength(4 * (levels.length - 1) + 4);
    tf.dispose([image, out, ...features, ...Object.values(grads)]);
    ftp.dispose();
    model.dispose();
  });

  it('upsamples to the image size when the largest map is smaller than the image', () => {
    const ftp = new FeatureTransferPyramid([{ layerName: 'f', height: 3, width: 3, channels: 4 }], [7, 7, 2], new SeededRandom(1));
    const out = ftp.apply(tf.zeros([1, 7, 7, 2]), [tf.ones([1, 3, 3, 4])]);
    expect(out.shape).toEqual([1, 7, 7, 2]);
    ftp.dispose();
  });
});

describe('Adaptive Channel Scaling', () => {
  it('maps tanh(u)·α/5 around mid-grey and clips to [0, 1]', () => {
    const u = tf.tensor4d([Math.atanh(0.6), Math.atanh(-0.2), 3, -3], [1, 2, 2, 1]);
    const alpha = tf.tensor4d([5], [1, 1, 1, 1]);
    expect(Array.from(channelScaledImage(u, alpha).dataSync()).map((v) => +v.toFixed(5))).toEqual([0.8, 0.4, +(0.5 + 0.5 * Math.tanh(3)).toFixed(5), +(0.5 - 0.5 * Math.tanh(3)).toFixed(5)]);
    // α = 10 doubles the contrast: 0.5 + 0.5·0.6·2 = 1.1 → clipped to 1; 0.5 − 0.2 = 0.3.
    expect(Array.from(channelScaledImage(u, tf.tensor4d([10], [1, 1, 1, 1])).dataSync().slice(0, 2)).map((v) => +v.toFixed(5))).toEqual([1, 0.3]);
    expect(ACS_REFERENCE_SCALE).toBe(5);
    const init = initialAlpha(new SeededRandom(1), 400, 3, 5, 1);
    const mean = init.reduce((a, b) => a + b, 0) / init.length;
    const std = Math.sqrt(init.reduce((a, b) => a + (b - mean) ** 2, 0) / init.length);
    expect(mean).toBeCloseTo(5, 1);
    expect(std).toBeCloseTo(1, 1);
  });

  it("gives the final (jittered) image's gradient w.r.t. α that finite differences give", () => {
    // Small u so no pixel is near the clip bounds; a fixed random weighting of the pixels as the loss.
    const n = 2;
    const c = 3;
    const u = randomTensor([n, 4, 5, c], 7, 0.4) as tf.Tensor4D;
    const weights = randomTensor([n, 4, 5, c], 8);
    const alpha0 = Float32Array.from(initialAlpha(new SeededRandom(9), n, c, 5, 1));
    const loss = (a: tf.Tensor) => tf.sum(tf.mul(jitterAndFlip(channelScaledImage(u, a as tf.Tensor4D), 1, -2, true), weights)) as tf.Scalar;
    const alpha = tf.tensor4d(alpha0, [n, 1, 1, c]);
    const analytic = tf.grad(loss)(alpha).dataSync();
    const eps = 1e-2;
    for (let k = 0; k < alpha0.length; k++) {
      const plus = alpha0.slice();
      const minus = alpha0.slice();
      plus[k] += eps;
      minus[k] -= eps;
      const fd = (loss(tf.tensor4d(plus, [n, 1, 1, c])).dataSync()[0] - loss(tf.tensor4d(minus, [n, 1, 1, c])).dataSync()[0]) / (2 * eps);
      expect(Math.abs(analytic[k] - fd)).toBeLessThanOrEqual(1e-2 * Math.max(1, Math.abs(fd)));
    }
    // And the closed form: ∂/∂α_{i,c} = Σ_pixels w·0.5·tanh(u)/5 (jitter only permutes the pixels).
    const closed = tf.sum(tf.mul(jitterAndFlip(tf.mul(tf.tanh(u), 0.5 / 5) as tf.Tensor4D, 1, -2, true), weights), [1, 2]).dataSync();
    closed.forEach((v, k) => expect(analytic[k]).toBeCloseTo(v, 4));
  });
});
