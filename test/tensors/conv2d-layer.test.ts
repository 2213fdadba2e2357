import * as tf from '@tensorflow/tfjs';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { PrunedGradientConv2D } from '../../src/core/tensors/conv2d-layer';
import { buildModel } from '../../src/core/models/zoo';
import { gaussianValues, relativeMaxError, take } from './support';

beforeAll(async () => {
  await initTensorBackend('wasm');
});

/** conv → conv (stride 2) → flatten → dense, with `conv` making each conv layer. */
function twoConvNet(conv: (args: Parameters<typeof tf.layers.conv2d>[0]) => tf.layers.Layer, extra: Partial<Parameters<typeof tf.layers.conv2d>[0]> = {}): tf.LayersModel {
  const input = tf.input({ shape: [9, 9, 2] });
  const init = (seed: number) => tf.initializers.glorotNormal({ seed });
  let x = conv({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(1), ...extra }).apply(input) as tf.SymbolicTensor;
  x = conv({ filters: 5, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, kernelInitializer: init(2), ...extra }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.flatten().apply(x) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: 3, kernelInitializer: init(3) }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

/** The loss and every variable's gradient of one training step, and the kernels it ran. */
async function trainingStep(model: tf.LayersModel) {
  const x = tf.tensor(gaussianValues(4 * 9 * 9 * 2, 5), [4, 9, 9, 2]);
  const y = tf.oneHot([0, 1, 2, 1], 3);
  let result: { loss: Float32Array; grads: Float32Array[] } | undefined;
  const profile = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
    result = { loss: take(value), grads: model.trainableWeights.map((w) => take(grads[w.originalName] ?? grads[w.name])) };
    tf.dispose(Object.values(grads));
  });
  tf.dispose([x, y]);
  return { ...result!, kernels: profile.kernels.map((k) => k.name) };
}

test('same loss and weight gradients as tfjs-layers\' Conv2D, without the first conv\'s input gradient', async () => {
  const reference = await trainingStep(twoConvNet((args) => tf.layers.conv2d(args)));
  const pruned = await trainingStep(twoConvNet((args) => new PrunedGradientConv2D(args)));
  expect(relativeMaxError(pruned.loss, reference.loss)).toBeLessThan(1e-6);
  expect(pruned.grads).toHaveLength(reference.grads.length);
  pruned.grads.forEach((g, i) => expect(relativeMaxError(g, reference.grads[i])).toBeLessThan(1e-5));
  const count = (kernels: string[], name: string) => kernels.filter((k) => k === name).length;
  // tfjs-layers: both convs' input gradients (the images' too); pruned: only the second conv's.
  expect(count(reference.kernels, 'Conv2DBackpropInput')).toBe(2);
  expect(count(pruned.kernels, 'Conv2DBackpropInput')).toBe(1);
  expect(count(pruned.kernels, 'Conv2DBackpropFilter')).toBe(2);
});

test('with a bias and an activation it runs tfjs-layers\' own call: the same kernels and results', async () => {
  const extra = { useBias: true, activation: 'relu' as const, biasInitializer: tf.initializers.randomNormal({ seed: 4 }) };
  const reference = await trainingStep(twoConvNet((args) => tf.layers.conv2d(args), extra));
  const pruned = await trainingStep(twoConvNet((args) => new PrunedGradientConv2D(args), extra));
  expect(relativeMaxError(pruned.loss, reference.loss)).toBeLessThan(1e-6);
  pruned.grads.forEach((g, i) => expect(relativeMaxError(g, reference.grads[i])).toBeLessThan(1e-5));
  expect(pruned.kernels).toEqual(reference.kernels);
});

test('zoo models use it, save as plain Conv2D and load back as it', async () => {
  const model = buildModel({ architecture: 'resnet-cifar', depth: 8, inputShape: [8, 8, 3], numClasses: 10, width: 0.5 }, 3);
  const convs = model.layers.filter((l) => l.getClassName() === 'Conv2D');
  expect(convs.length).toBeGreaterThan(0);
  convs.forEach((l) => expect(l).toBeInstanceOf(PrunedGradientConv2D));
  const saved = model.toJSON(null, false) as { config: { layers: Array<{ class_name: string }> } };
  expect(saved.config.layers.filter((l) => l.class_name === 'Conv2D')).toHaveLength(convs.length);
  const artifacts = await new Promise<tf.io.ModelArtifacts>((resolve) => {
    void model.save(tf.io.withSaveHandler(async (a) => {
      resolve(a);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
  });
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  loaded.layers.filter((l) => l.getClassName() === 'Conv2D').forEach((l) => expect(l).toBeInstanceOf(PrunedGradientConv2D));
  const x = tf.tensor(gaussianValues(2 * 8 * 8 * 3, 9), [2, 8, 8, 3]);
  expect(relativeMaxError(take(loaded.predict(x) as tf.Tensor), take(model.predict(x) as tf.Tensor))).toBeLessThan(1e-6);
  x.dispose();
  model.dispose();
  loaded.dispose();
});
