import * as tf from '@tensorflow/tfjs';
import { BATCH_NORM_INFERENCE_GRAD_KERNEL, BATCH_NORM_INFERENCE_KERNEL, RELU_OUTPUT_GRAD_KERNEL, type BatchNormInferenceAttrs } from '../batch-norm-inference';
import { kernelInput } from '../kernel-calls';
import { webgpuKernelConfig, type WebgpuKernelArgs } from './kernel-config';
import { PerElementProgram } from './per-element-program';

/** Inference BatchNorm (+ residual, + ReLU), its input gradient and a ReLU's gradient from its output (batch-norm-inference.ts), one program each. */

/** One thread per element, the channel the innermost axis; `body` sets `value` from index and c. */
class ChannelElementwiseProgram extends PerElementProgram {
  shaderKey: string;
  variableNames: string[];
  uniforms = 'channels : i32, epsilon : f32,';

  constructor(
    shape: number[],
    key: string,
    variableNames: string[],
    private readonly body: string,
  ) {
    super(shape);
    this.shaderKey = key;
    this.variableNames = variableNames;
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let c = index % uniforms.channels;
          let a = scale[c] * inverseSqrt(variance[c] + uniforms.epsilon);
          ${this.body}
          setOutputAtIndex(index, value);
        }
      }
    `;
  }
}

// ReLU through select, so that NaN passes through (a NaN loss must stay visible).
const FORWARD_BODY = 'var value = (x[index] - mean[c]) * a + offset[c];';
const RESIDUAL = 'value = value + residual[index];';
const RELU = 'value = select(value, 0.0, value < 0.0);';
const GRAD_BODY = 'var value = dy[index] * a;';
const RELU_GRAD = 'value = select(0.0, value, y[index] > 0.0);';

function channelsOf(t: tf.TensorInfo, kernelName: string): number {
  if (t.dtype !== 'float32') throw new Error(`${kernelName}: the input is ${t.dtype}, not float32`);
  if (t.shape.length < 1 || tf.util.sizeFromShape(t.shape) === 0) throw new Error(`${kernelName}: the input has shape ${JSON.stringify(t.shape)}`);
  return t.shape[t.shape.length - 1];
}

function perChannel(inputs: tf.NamedTensorInfoMap, names: string[], channels: number, kernelName: string): tf.TensorInfo[] {
  return names.map((name) => {
    const t = kernelInput(inputs, name, kernelName);
    const size = tf.util.sizeFromShape(t.shape);
    if (size !== channels) throw new Error(`${kernelName}: ${name} has ${size} values for ${channels} channels`);
    return t;
  });
}

function uniformsOf(channels: number, attrs: BatchNormInferenceAttrs) {
  return [
    { type: 'int32', data: [channels] },
    { type: 'float32', data: [attrs.epsilon] },
  ];
}

function batchNormInference({ inputs, backend, attrs }: WebgpuKernelArgs): tf.TensorInfo {
  const name = BATCH_NORM_INFERENCE_KERNEL;
  const x = kernelInput(inputs, 'x', name);
  const channels = channelsOf(x, name);
  const vectors = perChannel(inputs, ['mean', 'variance', 'offset', 'scale'], channels, name);
  const a = attrs as unknown as BatchNormInferenceAttrs;
  const residual = inputs.residual as tf.TensorInfo | undefined;
  if (residual !== undefined && (residual.dtype !== 'float32' || residual.shape.join() !== x.shape.join())) {
    throw new Error(`${name}: the residual is ${residual.dtype} ${JSON.stringify(residual.shape)}, x float32 ${JSON.stringify(x.shape)}`);
  }
  const body = [FORWARD_BODY, ...(residual === undefined ? [] : [RESIDUAL]), ...(a.relu ? [RELU] : [])].join('\n          ');
  const program = new ChannelElementwiseProgram(
    x.shape,
    `condense_batch_norm_inference${residual === undefined ? '' : '_residual'}${a.relu ? '_relu' : ''}`,
    ['x', 'mean', 'variance', 'offset', 'scale', ...(residual === undefined ? [] : ['residual'])],
    body,
  );
  return backend.runWebGPUProgram(program, [x, ...vectors, ...(residual === undefined ? [] : [residual])], 'float32', uniformsOf(channels, a));
}

function batchNormInferenceGrad({ inputs, backend, attrs }: WebgpuKernelArgs): tf.TensorInfo {
  const name = BATCH_NORM_INFERENCE_GRAD_KERNEL;
  const dy = kernelInput(inputs, 'dy', name);
  const y = kernelInput(inputs, 'y', name);
  const channels = channelsOf(dy, name);
  if (y.shape.join() !== dy.shape.join()) throw new Error(`${name}: y has shape ${JSON.stringify(y.shape)}, dy ${JSON.stringify(dy.shape)}`);
  const vectors = perChannel(inputs, ['variance', 'scale'], channels, name);
  const a = attrs as unknown as BatchNormInferenceAttrs;
  // y is bound only where it is read (a binding no code reads is left out of the pipeline's layout).
  const program = a.relu
    ? new ChannelElementwiseProgram(dy.shape, 'condense_batch_norm_inference_relu_grad', ['dy', 'y', 'variance', 'scale'], `${GRAD_BODY}\n          ${RELU_GRAD}`)
    : new ChannelElementwiseProgram(dy.shape, 'condense_batch_norm_inference_grad', ['dy', 'variance', 'scale'], GRAD_BODY);
  return backend.runWebGPUProgram(program, a.relu ? [dy, y, ...vectors] : [dy, ...vectors], 'float32', uniformsOf(channels, a));
}

class ReluOutputGradProgram extends PerElementProgram {
  shaderKey = 'condense_relu_output_grad';
  variableNames = ['dy', 'y'];
  uniforms = '';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          setOutputAtIndex(index, select(0.0, dy[index], y[index] > 0.0));
        }
      }
    `;
  }
}

function reluOutputGrad({ inputs, backend }: WebgpuKernelArgs): tf.TensorInfo {
  const name = RELU_OUTPUT_GRAD_KERNEL;
  const dy = kernelInput(inputs, 'dy', name);
  const y = kernelInput(inputs, 'y', name);
  if (dy.dtype !== 'float32' || y.dtype !== 'float32' || y.shape.join() !== dy.shape.join()) {
    throw new Error(`${name}: dy is ${dy.dtype} ${JSON.stringify(dy.shape)}, y ${y.dtype} ${JSON.stringify(y.shape)}; both must be float32 of one shape`);
  }
  return backend.runWebGPUProgram(new ReluOutputGradProgram(dy.shape), [dy, y], 'float32');
}

export const BATCH_NORM_INFERENCE_WEBGPU_KERNELS: readonly tf.KernelConfig[] = [
  webgpuKernelConfig(BATCH_NORM_INFERENCE_KERNEL, batchNormInference),
  webgpuKernelConfig(BATCH_NORM_INFERENCE_GRAD_KERNEL, batchNormInferenceGrad),
  webgpuKernelConfig(RELU_OUTPUT_GRAD_KERNEL, reluOutputGrad),
];
