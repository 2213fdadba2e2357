import * as tf from '@tensorflow/tfjs';
import { PluginInputError } from '../../core/plugins/contracts';

/** Layers that end the convolutional part of a classifier. */
const HEAD_START = new Set(['Flatten', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D']);
/** Layers between the last conv block and the head that carry no features of their own. */
const PASS_THROUGH = new Set(['MaxPooling2D', 'AveragePooling2D', 'Dropout', 'SpatialDropout2D', 'ZeroPadding2D']);

function inboundLayers(layer: tf.layers.Layer): tf.layers.Layer[] {
  // Every layer of a functional/sequential model has one inbound node per call; use the first.
  const nodes = (layer as unknown as { inboundNodes: Array<{ inboundLayers: tf.layers.Layer[] }> }).inboundNodes;
  return nodes[0]?.inboundLayers ?? [];
}

function isFeatureMap(layer: tf.layers.Layer): boolean {
  const shape = layer.outputShape as number[];
  return Array.isArray(shape) && shape.length === 4 && !Array.isArray(shape[0]);
}

/**
 * The name of the layer whose output is the model's last feature map: the output of the last
 * conv/BN/activation block before global pooling or flatten (pooling and dropout layers right before
 * the head are skipped, so LeNet gives `relu2`, not `pool2`). Throws PluginInputError when the model
 * has no such layer (no flatten/global pooling after a 4-D feature map).
 */
export function findFeatureLayer(model: tf.LayersModel): string {
  const head = model.layers.find((l) => HEAD_START.has(l.getClassName()));
  if (!head) {
    throw new PluginInputError(`model ${model.name} has no Flatten or GlobalPooling layer to find its last feature map from; set the layer by name in the config`);
  }
  let layer = inboundLayers(head)[0];
  while (layer && PASS_THROUGH.has(layer.getClassName()) && inboundLayers(layer).length === 1) layer = inboundLayers(layer)[0];
  if (!layer || !isFeatureMap(layer) || layer.getClassName() === 'InputLayer') {
    throw new PluginInputError(`model ${model.name}: the layer before ${head.name} is not a 4-D feature map; set the layer by name in the config`);
  }
  return layer.name;
}

/** The layer `name` of `model`, checked to output a [batch, h, w, c] feature map. */
export function featureLayer(model: tf.LayersModel, name: string): tf.layers.Layer {
  const layer = model.layers.find((l) => l.name === name);
  if (!layer) {
    throw new PluginInputError(`model ${model.name} has no layer "${name}"; its layers are ${model.layers.map((l) => l.name).join(', ')}`);
  }
  if (!isFeatureMap(layer)) {
    throw new PluginInputError(`layer "${name}" of model ${model.name} outputs ${JSON.stringify(layer.outputShape)}, not a [batch, height, width, channels] feature map`);
  }
  return layer;
}

/**
 * A model sharing `model`'s layers (and weights) that outputs [feature map of `layerName`, logits].
 * It owns no tensors: never dispose it (that would release the shared layers).
 */
export function withFeatureOutput(model: tf.LayersModel, layerName: string): tf.LayersModel {
  const layer = featureLayer(model, layerName);
  return tf.model({ name: `${model.name}_features`, inputs: model.inputs, outputs: [layer.output as tf.SymbolicTensor, model.outputs[0]] });
}
