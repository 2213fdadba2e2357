import * as tf from '@tensorflow/tfjs';
import {
  BATCH_NORM_INFERENCE_GRAD_KERNEL,
  BATCH_NORM_INFERENCE_KERNEL,
  BATCH_NORM_INFERENCE_KERNELS,
  batchNormInferenceKernelsRegistered,
  RELU_OUTPUT_GRAD_KERNEL,
} from '../../src/core/tensors/batch-norm-inference';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { bnStatisticsLoss, tapBatchNormInputs, type TappedModel } from '../../src/core/tensors/bn-taps';
import { inputGradientForward } from '../../src/core/tensors/input-gradient';
import type { ModelSpec } from '../../src/core/models/model-spec';
import { buildModel } from '../../src/core/models/zoo';
import { expectTensorCountFlat, gaussianValues, relativeMaxError, take } from './support';

/**
 * The input-only path's use of the inference-BatchNorm kernels (batch-norm-inference.ts): which
 * layers it fuses (BN + ReLU, and a residual block's BN → Add → ReLU) and that the fused walk gives
 * the layers model's logits and image gradient. Only webgpu registers the kernels in the product
 * (checked against cpu by bench:webgpu); here the same contract is implemented in plain JavaScript
 * on the cpu backend, so the walk itself is tested where CI runs.
 */

type CpuBackend = tf.KernelBackend & {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
};

function values(backend: CpuBackend, t: tf.TensorInfo | undefined): Float32Array {
  if (t === undefined) throw new Error('missing input');
  return backend.readSync(t.dataId) as Float32Array;
}

/** The kernels' contract, elementwise over [..., C] (the reference for the walk, not a product path). */
const REFERENCE_KERNELS: tf.KernelConfig[] = [
  {
    kernelName: BATCH_NORM_INFERENCE_KERNEL,
    backendName: 'cpu',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as CpuBackend;
      const { epsilon, relu } = attrs as unknown as { epsilon: number; relu: boolean };
      const [x, mean, variance, offset, scale] = ['x', 'mean', 'variance', 'offset', 'scale'].map((n) => values(b, inputs[n]));
      const residual = inputs.residual === undefined ? undefined : values(b, inputs.residual);
      const channels = mean.length;
      const out = x.map((v, i) => {
        const c = i % channels;
        const y = (v - mean[c]) * (scale[c] / Math.sqrt(variance[c] + epsilon)) + offset[c] + (residual?.[i] ?? 0);
        return relu && y < 0 ? 0 : y;
      });
      return b.makeTensorInfo(inputs.x!.shape, 'float32', out);
    },
  },
  {
    kernelName: BATCH_NORM_INFERENCE_GRAD_KERNEL,
    backendName: 'cpu',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as CpuBackend;
      const { epsilon, relu } = attrs as unknown as { epsilon: number; relu: boolean };
      const [dy, variance, scale] = ['dy', 'variance', 'scale'].map((n) => values(b, inputs[n]));
      const y = relu ? values(b, inputs.y) : undefined;
      const channels = scale.length;
      const out = dy.map((g, i) => (y !== undefined && !(y[i] > 0) ? 0 : g * (scale[i % channels] / Math.sqrt(variance[i % channels] + epsilon))));
      return b.makeTensorInfo(inputs.dy!.shape, 'float32', out);
    },
  },
  {
    kernelName: RELU_OUTPUT_GRAD_KERNEL,
    backendName: 'cpu',
    kernelFunc: ({ inputs, backend }) => {
      const b = backend as CpuBackend;
      const [dy, y] = ['dy', 'y'].map((n) => values(b, inputs[n]));
      return b.makeTensorInfo(inputs.dy!.shape, 'float32', dy.map((g, i) => (y[i] > 0 ? g : 0)));
    },
  },
];

beforeAll(async () => {
  await initTensorBackend('cpu');
});

afterEach(() => {
  for (const name of BATCH_NORM_INFERENCE_KERNELS) {
    if (tf.getKernel(name, 'cpu') !== undefined) tf.unregisterKernel(name, 'cpu');
  }
});

const LABELS = [0, 3, 1];

/** A zoo model with random BN weights and running statistics, so that every BN does something. */
function modelWithRandomBatchNorms(spec: ModelSpec): tf.LayersModel {
  const model = buildModel(spec, 11);
  model.layers
    .filter((l) => l.getClassName() === 'BatchNormalization')
    .forEach((layer, i) => {
      const c = layer.getWeights()[0].shape[0];
      const g = (k: number) => gaussianValues(c, 100 * i + k);
      layer.setWeights([
        tf.tensor1d(g(0).map((v) => 1 + 0.3 * v)),
        tf.tensor1d(g(1).map((v) => 0.2 * v)),
        tf.tensor1d(g(2).map((v) => 0.2 * v)),
        tf.tensor1d(g(3).map((v) => 0.5 + Math.abs(v))),
      ]);
    });
  return model;
}

function lossAndGradient(forward: TappedModel, x: tf.Tensor, classes: number) {
  const loss = (im: tf.Tensor) => {
    const { logits, taps } = forward(im, { training: false });
    return tf.add(tf.losses.softmaxCrossEntropy(tf.oneHot(LABELS, classes), logits), bnStatisticsLoss(taps)) as tf.Scalar;
  };
  const { value, grad } = tf.valueAndGrad(loss)(x);
  return { loss: take(value)[0], gradient: take(grad), logits: take(tf.tidy(() => forward(x).logits)) };
}

test('a residual ResNet through the fused kernels: same logits, loss and image gradient as the layers model; BN, Add and ReLU of each block tail run as one kernel', async () => {
  const spec: ModelSpec = { architecture: 'resnet-basic', depth: 18, inputShape: [8, 8, 3], numClasses: 10, width: 0.125 };
  const model = modelWithRandomBatchNorms(spec);
  const x = tf.tensor(gaussianValues(LABELS.length * 8 * 8 * 3, 5), [LABELS.length, 8, 8, 3]);
  const reference = lossAndGradient(tapBatchNormInputs(model), x, 10);

  REFERENCE_KERNELS.forEach((k) => tf.registerKernel(k));
  expect(batchNormInferenceKernelsRegistered('cpu')).toBe(true);
  const forward = inputGradientForward(model);
  const fused = lossAndGradient(forward, x, 10);
  expect(relativeMaxError(fused.logits, reference.logits)).toBeLessThan(1e-5);
  expect(Math.abs(fused.loss - reference.loss) / Math.abs(reference.loss)).toBeLessThan(1e-5);
  expect(relativeMaxError(fused.gradient, reference.gradient)).toBeLessThan(1e-4);

  const profile = await tf.profile(() => tf.dispose(tf.grad((im: tf.Tensor) => tf.sum(forward(im).logits))(x)));
  const calls = (name: string) => profile.kernels.filter((k) => k.name === name).length;
  const batchNorms = model.layers.filter((l) => l.getClassName() === 'BatchNormalization').length;
  const blocks = model.layers.filter((l) => l.getClassName() === 'Add').length;
  expect(blocks).toBe(8);
  // Every BN runs as the kernel, each block's tail BN with its residual; no ReLU or residual Add remains.
  expect(calls(BATCH_NORM_INFERENCE_KERNEL)).toBe(batchNorms);
  expect(calls('Relu')).toBe(0);
  expect(calls(RELU_OUTPUT_GRAD_KERNEL)).toBe(blocks);
  expect(calls(BATCH_NORM_INFERENCE_GRAD_KERNEL)).toBe(batchNorms);
  x.dispose();
  model.dispose();
});

test('taps are the same BatchNorm inputs in the same order with and without the kernels, and no tensors are left', () => {
  const spec: ModelSpec = { architecture: 'resnet-cifar', depth: 8, inputShape: [8, 8, 3], numClasses: 10, width: 0.5 };
  const model = modelWithRandomBatchNorms(spec);
  const x = tf.tensor(gaussianValues(LABELS.length * 8 * 8 * 3, 6), [LABELS.length, 8, 8, 3]);
  const tapsOf = (forward: TappedModel) =>
    tf.tidy(() => forward(x).taps.map((t) => ({ layer: t.layerName, input: Array.from(t.input.dataSync()) })));
  const plain = tapsOf(inputGradientForward(model));
  REFERENCE_KERNELS.forEach((k) => tf.registerKernel(k));
  const forward = inputGradientForward(model);
  const fused = tapsOf(forward);
  expect(fused.map((t) => t.layer)).toEqual(plain.map((t) => t.layer));
  fused.forEach((t, i) => expect(relativeMaxError(t.input, plain[i].input)).toBeLessThan(1e-5));

  expectTensorCountFlat(() => tf.dispose(tf.grad((im: tf.Tensor) => bnStatisticsLoss(forward(im, { training: false }).taps))(x)));
  x.dispose();
  model.dispose();
});
