import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../random';
import { isKernelWeight } from '../training/optimizers';
import { serializeModel } from './model-files';

/** Size of a weight, from its (fully defined) shape. */
function weightSize(w: tf.LayerVariable): number {
  return (w.shape as number[]).reduce((a, b) => a * b, 1);
}

export interface ParamCounts {
  trainable: number;
  /** BatchNorm moving statistics and frozen weights. */
  nonTrainable: number;
  total: number;
}

export function countParams(model: tf.LayersModel): ParamCounts {
  const trainable = model.trainableWeights.reduce((s, w) => s + weightSize(w), 0);
  const nonTrainable = model.nonTrainableWeights.reduce((s, w) => s + weightSize(w), 0);
  return { trainable, nonTrainable, total: trainable + nonTrainable };
}

const asPair = (v: number | number[]): [number, number] => (Array.isArray(v) ? [v[0], v[1] ?? v[0]] : [v, v]);
const lastDim = (shape: tf.Shape | tf.Shape[]): number => {
  const s = (Array.isArray(shape[0]) ? shape[0] : shape) as tf.Shape;
  return s[s.length - 1]!;
};
const spatial = (shape: tf.Shape | tf.Shape[]): number => {
  const s = (Array.isArray(shape[0]) ? shape[0] : shape) as tf.Shape;
  return s.slice(1, -1).reduce((a: number, b) => a * (b ?? 1), 1);
};

/**
 * Multiply-accumulates of one forward pass on one image. Counted: Conv2D (H_out·W_out·K_h·K_w·C_in·C_out;
 * tfjs' Conv2D has no groups), DepthwiseConv2D (H_out·W_out·K_h·K_w·C_in·multiplier), SeparableConv2D
 * (its depthwise plus 1×1 pointwise part), Conv2DTranspose (H_in·W_in·K_h·K_w·C_in·C_out) and Dense
 * (inputs·units per position). Ignored as negligible: BatchNorm, bias adds, activations, pooling, add.
 */
export function countMacs(model: tf.LayersModel): number {
  let macs = 0;
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    const input = layer.input;
    const inputShape = (Array.isArray(input) ? input[0] : input).shape;
    const config = layer.getConfig() as Record<string, any>;
    if (cls === 'Conv2D' || cls === 'DepthwiseConv2D' || cls === 'SeparableConv2D' || cls === 'Conv2DTranspose') {
      const [kh, kw] = asPair(config.kernelSize);
      const cin = lastDim(inputShape);
      const outPositions = spatial(layer.outputShape);
      if (cls === 'Conv2D') macs += outPositions * kh * kw * cin * lastDim(layer.outputShape);
      else if (cls === 'Conv2DTranspose') macs += spatial(inputShape) * kh * kw * cin * lastDim(layer.outputShape);
      else {
        const multiplier = config.depthMultiplier ?? 1;
        macs += outPositions * kh * kw * cin * multiplier;
        if (cls === 'SeparableConv2D') macs += outPositions * cin * multiplier * lastDim(layer.outputShape);
      }
    } else if (cls === 'Dense') {
      macs += spatial(layer.outputShape) * lastDim(inputShape) * lastDim(layer.outputShape);
    }
  }
  return macs;
}

/** Bytes of the saved LayersModel (model.json + weights), as saveModelDir would write it. */
export async function modelBytesOnDisk(model: tf.LayersModel): Promise<number> {
  const files = await serializeModel(model);
  let bytes = Buffer.byteLength(files.modelJson);
  for (const w of files.weights.values()) bytes += w.length;
  return bytes;
}

export interface LatencyOptions {
  batchSize: number;
  runs?: number;
  warmup?: number;
}

export interface LatencyResult {
  /** Median wall time of one forward pass of the whole batch, including reading the result. */
  medianMs: number;
  batchSize: number;
  runs: number;
  backend: string;
}

/** Measures inference latency on the current backend: `warmup` untimed runs, then the median of `runs`. */
export async function measureLatency(model: tf.LayersModel, options: LatencyOptions): Promise<LatencyResult> {
  const { batchSize, runs = 20, warmup = 3 } = options;
  if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new RangeError(`batchSize must be a positive integer; got ${batchSize}`);
  if (!(Number.isInteger(runs) && runs > 0)) throw new RangeError(`runs must be a positive integer; got ${runs}`);
  const shape = model.inputs[0].shape.slice(1) as number[];
  const random = new SeededRandom(0);
  const pixels = Float32Array.from({ length: batchSize * shape.reduce((a, b) => a * b, 1) }, () => random.next());
  const x = tf.tensor(pixels, [batchSize, ...shape]);
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + runs; i++) {
      const start = performance.now();
      const y = model.predict(x) as tf.Tensor;
      await y.data();
      const elapsed = performance.now() - start;
      y.dispose();
      if (i >= warmup) times.push(elapsed);
    }
  } finally {
    x.dispose();
  }
  times.sort((a, b) => a - b);
  const mid = Math.floor(times.length / 2);
  const medianMs = times.length % 2 === 1 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  return { medianMs, batchSize, runs, backend: tf.getBackend() };
}

/** Fraction of conv/dense kernel weights that are exactly zero (0 when the model has no kernels). Reads asynchronously (webgpu cannot read synchronously under Node). */
export async function countSparsity(model: tf.LayersModel): Promise<number> {
  let zeros = 0;
  let total = 0;
  for (const w of model.weights) {
    if (!isKernelWeight(w.originalName)) continue;
    const values = await w.read().data();
    total += values.length;
    for (let i = 0; i < values.length; i++) if (values[i] === 0) zeros += 1;
  }
  return total === 0 ? 0 : zeros / total;
}
