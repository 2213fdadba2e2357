import * as tf from '@tensorflow/tfjs';
import { batchNormAddRelu, batchNormInference, batchNormInferenceKernelsRegistered, type BatchNormConstants } from './batch-norm-inference';
import { BnTapError, isBatchNorm, movingStatistic, type BnTap, type TappedModel } from './bn-taps';

/**
 * Input-only gradient path for synthesis (DeepInversion and kin), where the gradient is taken with
 * respect to the images and never the weights.
 *
 * tfjs-layers' Conv2D calls `tf.fused.conv2d` and Dense calls `tf.fused.matMul`; their gradients are
 * custom gradients that always compute the filter (and bias) gradient too, even when only dx is
 * asked for. This forward walks the model's layer graph and runs Conv2D and Dense as plain
 * `tf.conv2d` / `tf.matMul` + bias + activation, whose gradient functions tfjs prunes to the inputs
 * that lead back to the differentiated tensor: under `tf.grad` w.r.t. the input no filter gradient
 * is computed. Every other layer runs its own `apply` (they have no fused weight gradients), except
 * that in inference mode, on a backend with the kernels of batch-norm-inference.ts, a
 * BatchNormalization layer (with the ReLU activation layer that is its only consumer, if so) runs as
 * one kernel with a gradient for its input only, and a residual block's tail BN → Add → ReLU (the
 * BN's only consumer the Add, the Add's only consumer the ReLU) as one kernel too.
 * Weights are read from the model's variables, so the result tracks weight updates.
 */

/** The parts of a Conv2D layer's config this path reads. */
interface ConvConfig {
  strides: number | number[];
  padding: 'same' | 'valid' | 'causal';
  dataFormat: 'channelsLast' | 'channelsFirst';
  dilationRate: number | number[];
  useBias: boolean;
}

function weightOf(layer: tf.layers.Layer, suffix: 'kernel' | 'bias' | 'gamma' | 'beta'): tf.Tensor {
  const weight = layer.weights.find((w) => w.originalName.endsWith(suffix) || w.name.endsWith(suffix));
  if (weight === undefined) throw new BnTapError(`layer ${layer.name} has no ${suffix} weight`);
  return weight.read();
}

/** The layer's activation applied to `x` (tfjs-layers keeps it as an object with `apply`). */
function activate(layer: tf.layers.Layer, x: tf.Tensor): tf.Tensor {
  const activation = (layer as unknown as { activation?: { apply(t: tf.Tensor): tf.Tensor; getClassName(): string } }).activation;
  if (activation === undefined || activation.getClassName() === 'linear') return x;
  return activation.apply(x);
}

function plainConv2d(layer: tf.layers.Layer, x: tf.Tensor): tf.Tensor {
  const config = layer.getConfig() as unknown as ConvConfig;
  if (config.dataFormat !== 'channelsLast' || config.padding === 'causal') {
    throw new BnTapError(`Conv2D layer ${layer.name}: the input-gradient path supports channelsLast with 'same'/'valid' padding only`);
  }
  const pair = (v: number | number[]): [number, number] => (Array.isArray(v) ? [v[0], v[1] ?? v[0]] : [v, v]);
  let y = tf.conv2d(x as tf.Tensor4D, weightOf(layer, 'kernel') as tf.Tensor4D, pair(config.strides), config.padding, 'NHWC', pair(config.dilationRate));
  if (config.useBias) y = tf.add(y, weightOf(layer, 'bias'));
  return activate(layer, y);
}

function plainDense(layer: tf.layers.Layer, x: tf.Tensor): tf.Tensor {
  const { useBias } = layer.getConfig() as unknown as { useBias: boolean };
  if (x.rank !== 2) return layer.apply(x) as tf.Tensor;
  let y = tf.matMul(x as tf.Tensor2D, weightOf(layer, 'kernel') as tf.Tensor2D);
  if (useBias) y = tf.add(y, weightOf(layer, 'bias'));
  return activate(layer, y);
}

/** A layer's output on the input-only path: Conv2D and Dense as plain ops, the others as themselves. */
function applyLayer(layer: tf.layers.Layer, input: tf.Tensor | tf.Tensor[], training: boolean): tf.Tensor {
  const first = Array.isArray(input) ? input[0] : input;
  switch (layer.getClassName()) {
    case 'Conv2D':
      return plainConv2d(layer, first);
    case 'Dense':
      return plainDense(layer, first);
    default:
      return layer.apply(input, { training }) as tf.Tensor;
  }
}

function isReluActivation(layer: tf.layers.Layer): boolean {
  return layer.getClassName() === 'Activation' && (layer.getConfig() as { activation?: unknown }).activation === 'relu';
}

/** A BatchNormalization layer that can run through batchNormInference, and whether ReLU goes with it. */
interface InferenceBatchNorm {
  constants: () => BatchNormConstants;
  /** The ReLU activation layer applied with it: its only consumer. */
  relu?: tf.layers.Layer;
  /** Its only consumer, a two-input Add whose only consumer is `relu`: run as one with them. */
  residualAdd?: tf.layers.Layer;
}

/** The layer consuming `layer`'s output when it is the only one and has a single node in `model`. */
function onlyConsumer(model: tf.LayersModel, layer: tf.layers.Layer): tf.layers.Layer | undefined {
  const outbound = layer.outboundNodes;
  const consumer = outbound.length === 1 ? outbound[0].outboundLayer : undefined;
  return consumer !== undefined && consumer.inboundNodes.length === 1 && model.layers.includes(consumer) ? consumer : undefined;
}

/** Plain BatchNormalization layers (last axis, γ and β) of `model`, by name, each with its ReLU if fusable. */
function inferenceBatchNorms(model: tf.LayersModel): Map<string, InferenceBatchNorm> {
  const found = new Map<string, InferenceBatchNorm>();
  const claimedAdds = new Set<tf.layers.Layer>();
  for (const layer of model.layers.filter(isBatchNorm)) {
    const config = layer.getConfig() as { axis?: number | number[]; center?: boolean; scale?: boolean; epsilon?: number };
    const rank = layer.inboundNodes[0]?.inputTensors[0]?.shape.length;
    const axis = Array.isArray(config.axis) ? (config.axis.length === 1 ? config.axis[0] : undefined) : config.axis;
    if (layer.inboundNodes.length !== 1 || rank === undefined || axis === undefined || (axis !== -1 && axis !== rank - 1)) continue;
    if (config.center !== true || config.scale !== true || config.epsilon === undefined) continue;
    const epsilon = config.epsilon;
    const consumer = onlyConsumer(model, layer);
    let relu = consumer !== undefined && isReluActivation(consumer) ? consumer : undefined;
    let residualAdd: tf.layers.Layer | undefined;
    if (consumer !== undefined && consumer.getClassName() === 'Add' && !claimedAdds.has(consumer)) {
      const addInputs = consumer.inboundNodes[0].inputTensors;
      const addConsumer = onlyConsumer(model, consumer);
      const fromThis = addInputs.filter((t) => t.id === layer.inboundNodes[0].outputTensors[0].id).length;
      if (addInputs.length === 2 && fromThis === 1 && addConsumer !== undefined && isReluActivation(addConsumer)) {
        residualAdd = consumer;
        relu = addConsumer;
        claimedAdds.add(consumer);
      }
    }
    found.set(layer.name, {
      relu,
      residualAdd,
      constants: () => ({
        movingMean: movingStatistic(layer, 'moving_mean'),
        movingVariance: movingStatistic(layer, 'moving_variance'),
        gamma: weightOf(layer, 'gamma') as tf.Tensor1D,
        beta: weightOf(layer, 'beta') as tf.Tensor1D,
        epsilon,
      }),
    });
  }
  return found;
}

/**
 * A `TappedModel` (logits and every BatchNorm layer's input) over `model` whose gradient with
 * respect to the input computes no weight gradients. Same values as `tapBatchNormInputs(model)`.
 */
export function inputGradientForward(model: tf.LayersModel): TappedModel {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new BnTapError(`model ${model.name} has ${model.inputs.length} inputs and ${model.outputs.length} outputs; the input-gradient path needs one of each`);
  }
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel) throw new BnTapError(`model ${model.name} nests model ${layer.name}; flatten it first`);
  }
  const statistics = new Map(
    model.layers.filter(isBatchNorm).map((layer) => [
      layer.name,
      { movingMean: movingStatistic(layer, 'moving_mean'), movingVariance: movingStatistic(layer, 'moving_variance') },
    ]),
  );
  const inputId = model.inputs[0].id;
  const outputId = model.outputs[0].id;
  const batchNorms = inferenceBatchNorms(model);

  return (x, options = {}) => {
    const training = options.training ?? false;
    const byKernels = !training && batchNormInferenceKernelsRegistered();
    const values = new Map<number, tf.Tensor>([[inputId, x]]);
    /** Inputs of BatchNorms run later with their residual Add and ReLU, by the BN output's id. */
    const deferred = new Map<number, { x: tf.Tensor; batchNorm: InferenceBatchNorm }>();
    const taps: BnTap[] = [];
    /** ReLU layers already applied with their BatchNorm in this pass: they pass their input on. */
    const appliedRelus = new Set<tf.layers.Layer>();
    for (const layer of model.layers) {
      if (layer.getClassName() === 'InputLayer') continue;
      // The node of this model: the one whose inputs are all computed (a layer may be shared).
      const node = layer.inboundNodes.find((n) => n.inputTensors.length > 0 && n.inputTensors.every((t) => values.has(t.id) || deferred.has(t.id)));
      if (node === undefined) throw new BnTapError(`layer ${layer.name} of model ${model.name} has no inbound node fed by this model's graph`);
      if (node.outputTensors.length !== 1) throw new BnTapError(`layer ${layer.name} has ${node.outputTensors.length} outputs; only single-output layers are supported`);
      const held = node.inputTensors.map((t) => deferred.get(t.id));
      const tail = held.find((h) => h !== undefined);
      if (tail !== undefined) {
        // The residual Add of a deferred BatchNorm: BN + Add + ReLU in one kernel where the shapes allow.
        const residual = values.get(node.inputTensors[held.indexOf(tail) === 0 ? 1 : 0].id);
        if (residual !== undefined && residual.dtype === 'float32' && residual.shape.join() === tail.x.shape.join()) {
          values.set(node.outputTensors[0].id, batchNormAddRelu(tail.x, residual, tail.batchNorm.constants()));
          appliedRelus.add(tail.batchNorm.relu!);
        } else {
          const inputs = node.inputTensors.map((t, k) => held[k] === undefined ? values.get(t.id)! : batchNormInference(held[k]!.x, held[k]!.batchNorm.constants(), false));
          values.set(node.outputTensors[0].id, applyLayer(layer, inputs, training));
        }
        continue;
      }
      const inputs = node.inputTensors.map((t) => values.get(t.id)!);
      const input = inputs.length === 1 ? inputs[0] : inputs;
      const batchNorm = byKernels && inputs[0].dtype === 'float32' ? batchNorms.get(layer.name) : undefined;
      const stats = statistics.get(layer.name);
      if (stats !== undefined) taps.push({ layerName: layer.name, input: inputs[0], ...stats });
      if (batchNorm?.residualAdd !== undefined) {
        deferred.set(node.outputTensors[0].id, { x: inputs[0], batchNorm });
        continue;
      }
      let output: tf.Tensor;
      if (batchNorm !== undefined) {
        output = batchNormInference(inputs[0], batchNorm.constants(), batchNorm.relu !== undefined);
        if (batchNorm.relu !== undefined) appliedRelus.add(batchNorm.relu);
      } else if (appliedRelus.has(layer)) {
        output = inputs[0];
      } else {
        output = applyLayer(layer, input, training);
      }
      values.set(node.outputTensors[0].id, output);
    }
    const logits = values.get(outputId);
    if (logits === undefined) throw new BnTapError(`model ${model.name}: its output was not reached by the layer walk`);
    return { logits, taps };
  };
}
