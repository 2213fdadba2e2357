import * as tf from '@tensorflow/tfjs';
import type { SeededRandom } from '../../core/random';

/**
 * Raw trainable layers of NaturalInversion's per-batch networks (generator, FTP decoder): plain
 * tf.variables filled from a SeededRandom, so a batch's networks depend only on its seed and not
 * on the backend's random ops. Initialisers follow PyTorch, as the reference code:
 * - `torch-default`: nn.Conv2d / nn.Linear defaults, weights and biases U(±1/√fanIn);
 * - `kaiming-normal`: kaiming_normal_ (N(0, 2/fanIn)) weights, zero bias (the reference generator's convs);
 * - `identity`: a 1×1 conv with in = out channels that starts as the identity map, zero bias.
 */
export type Initialiser = 'torch-default' | 'kaiming-normal' | 'identity';

/** A conv (kernel [k, k, in, out], stride 1, 'same' padding) or dense (kernel [in, out]) layer. */
export interface LinearParams {
  kernel: tf.Variable;
  bias: tf.Variable;
}

function filled(random: SeededRandom, size: number, draw: (random: SeededRandom) => number): Float32Array {
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = draw(random);
  return values;
}

function linearParams(random: SeededRandom, kernelShape: number[], fanIn: number, outUnits: number, init: Initialiser): LinearParams {
  const size = kernelShape.reduce((a, b) => a * b, 1);
  const bound = 1 / Math.sqrt(fanIn);
  const uniform = (r: SeededRandom) => (2 * r.next() - 1) * bound;
  let kernel: Float32Array;
  if (init === 'identity') {
    if (size !== outUnits * outUnits) throw new Error(`an identity initialiser needs a 1×1 kernel with as many inputs as outputs; got ${kernelShape.join('×')}`);
    kernel = new Float32Array(size);
    for (let c = 0; c < outUnits; c++) kernel[c * outUnits + c] = 1;
  } else {
    kernel = init === 'kaiming-normal' ? filled(random, size, (r) => r.gaussian() * Math.sqrt(2 / fanIn)) : filled(random, size, uniform);
  }
  const bias = init === 'torch-default' ? filled(random, outUnits, uniform) : new Float32Array(outUnits);
  return tf.tidy(() => ({
    kernel: tf.variable(tf.tensor(kernel, kernelShape), true),
    bias: tf.variable(tf.tensor1d(bias), true),
  }));
}

export function convParams(random: SeededRandom, kernelSize: number, inChannels: number, outChannels: number, init: Initialiser): LinearParams {
  return linearParams(random, [kernelSize, kernelSize, inChannels, outChannels], kernelSize * kernelSize * inChannels, outChannels, init);
}

export function denseParams(random: SeededRandom, inUnits: number, outUnits: number, init: Initialiser): LinearParams {
  return linearParams(random, [inUnits, outUnits], inUnits, outUnits, init);
}

/** Stride-1 'same' convolution plus bias (plain tf.conv2d: its gradient is pruned to what is asked for). */
export function conv(x: tf.Tensor4D, p: LinearParams): tf.Tensor4D {
  return tf.add(tf.conv2d(x, p.kernel as tf.Tensor4D, 1, 'same'), p.bias);
}

export function dense(x: tf.Tensor2D, p: LinearParams): tf.Tensor2D {
  return tf.add(tf.matMul(x, p.kernel as tf.Tensor2D), p.bias);
}

/** Nearest-neighbour resize to exactly `height`×`width` (the reference's nn.Upsample; any ratio). */
export function resizeTo(x: tf.Tensor4D, height: number, width: number): tf.Tensor4D {
  if (x.shape[1] === height && x.shape[2] === width) return x;
  return tf.image.resizeNearestNeighbor(x, [height, width]);
}

export function paramVariables(params: readonly LinearParams[]): tf.Variable[] {
  return params.flatMap((p) => [p.kernel, p.bias]);
}
