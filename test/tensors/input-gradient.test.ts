import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { bnStatisticsLoss, tapBatchNormInputs, type TappedModel } from '../../src/core/tensors/bn-taps';
import { inputGradientForward } from '../../src/core/tensors/input-gradient';
import { buildModel } from '../../src/core/models/zoo';
import { buildSmallConvNet, expectTensorCountFlat, gaussianValues, relativeMaxError, take } from './support';

beforeAll(async () => {
  await initTensorBackend('wasm');
});

const LABELS = [0, 2, 1, 2];

/** DeepInversion's loss: cross-entropy to fixed labels + BN statistics, teacher in inference mode. */
function inversionLoss(forward: TappedModel, x: tf.Tensor, classes: number): tf.Scalar {
  const { logits, taps } = forward(x, { training: false });
  return tf.add(tf.losses.softmaxCrossEntropy(tf.oneHot(LABELS, classes), logits), bnStatisticsLoss(taps)) as tf.Scalar;
}

function compare(model: tf.LayersModel, inputShape: number[], classes: number) {
  const x = tf.tensor(gaussianValues(LABELS.length * inputShape.reduce((a, b) => a * b), 7), [LABELS.length, ...inputShape]);
  const paths = [tapBatchNormInputs(model), inputGradientForward(model)];
  const results = paths.map((forward) => {
    const logits = take(tf.tidy(() => forward(x).logits));
    const tapCount = tf.tidy(() => forward(x).taps.length);
    let gradient: Float32Array = new Float32Array();
    const profileRun = tf.profile(() => {
      gradient = take(tf.grad((xx: tf.Tensor) => inversionLoss(forward, xx, classes))(x));
    });
    return { logits, tapCount, gradient, profileRun };
  });
  x.dispose();
  return results;
}

test('the input-only path gives the layers model\'s logits and input gradient, without filter gradients (small net)', async () => {
  await tf.setBackend('wasm');
  const model = buildSmallConvNet({ inputShape: [13, 13, 3], numClasses: 3, seed: 3, dropout: 0.3 });
  const [layers, inputOnly] = compare(model, [13, 13, 3], 3);
  expect(inputOnly.tapCount).toBe(layers.tapCount);
  expect(relativeMaxError(inputOnly.logits, layers.logits)).toBeLessThan(1e-6);
  expect(relativeMaxError(inputOnly.gradient, layers.gradient)).toBeLessThan(1e-5);
  const kernelsOf = async (p: ReturnType<typeof tf.profile>) => (await p).kernels.map((k) => k.name);
  await layers.profileRun;
  const inputOnlyKernels = await kernelsOf(inputOnly.profileRun);
  expect(inputOnlyKernels).not.toContain('Conv2DBackpropFilter');
  expect(inputOnlyKernels).toContain('Conv2DBackpropInput');
  model.dispose();
});

test('same for the zoo\'s LeNet-5-BN (dense layers, max pooling), and it follows weight updates', async () => {
  await tf.setBackend('wasm');
  const model = buildModel({ architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 }, 5);
  const [layers, inputOnly] = compare(model, [28, 28, 1], 10);
  expect(relativeMaxError(inputOnly.logits, layers.logits)).toBeLessThan(1e-6);
  expect(relativeMaxError(inputOnly.gradient, layers.gradient)).toBeLessThan(1e-5);
  await layers.profileRun;
  const inputOnlyKernels = (await inputOnly.profileRun).kernels.map((k) => k.name);
  expect(inputOnlyKernels).not.toContain('Conv2DBackpropFilter');
  // Change the weights: a forward built before still reads the model's current variables.
  const forward = inputGradientForward(model);
  model.setWeights(model.getWeights().map((w) => tf.mul(w, 1.5)));
  const x = tf.tensor(gaussianValues(2 * 28 * 28, 9), [2, 28, 28, 1]);
  const viaLayers = take(tf.tidy(() => model.predict(x) as tf.Tensor));
  const viaInputOnly = take(tf.tidy(() => forward(x).logits));
  expect(relativeMaxError(viaInputOnly, viaLayers)).toBeLessThan(1e-6);
  x.dispose();
  model.dispose();
});

test('no tensors are left behind by a step through the input-only path', async () => {
  await tf.setBackend('wasm');
  const model = buildSmallConvNet({ inputShape: [13, 13, 2], numClasses: 3, seed: 4 });
  const forward = inputGradientForward(model);
  const x = tf.tensor(gaussianValues(4 * 13 * 13 * 2, 8), [4, 13, 13, 2]);
  expectTensorCountFlat(() => tf.dispose(tf.grad((xx: tf.Tensor) => inversionLoss(forward, xx, 3))(x)));
  x.dispose();
  model.dispose();
});
