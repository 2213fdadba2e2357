import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { ModelHandle } from '../../core/models/model-spec';
import { throwIfAborted, type PruningInput, type PruningOutput, type PruningPlugin, type StageContext } from '../../core/plugins/contracts';

export const magnitudeConfigSchema = z.strictObject({
  sparsity: z.number().min(0).max(0.999).default(0.5).describe('Fraction of the prunable weights to zero, chosen globally by magnitude'),
  includeDense: z.boolean().default(true).describe('Prune dense kernels as well as conv kernels'),
  includeClassifier: z.boolean().default(false).describe('Prune the final (output) layer too'),
  schedule: z.literal('one-shot').default('one-shot').describe('one-shot: prune once, no fine-tuning (gradual pruning comes later)'),
});
export type MagnitudeConfig = z.infer<typeof magnitudeConfigSchema>;

const CONV_CLASSES = new Set(['Conv2D', 'DepthwiseConv2D', 'SeparableConv2D']);

/** A kernel the pruner may mask: its layer, its weight name (as saved) and its values. */
export interface PrunableKernel {
  layer: tf.layers.Layer;
  weightName: string;
  values: Float32Array;
}

/** Conv kernels, and dense kernels unless excluded; the model's output layers only when asked. */
export function prunableLayers(model: tf.LayersModel, options: Pick<MagnitudeConfig, 'includeDense' | 'includeClassifier'>): tf.layers.Layer[] {
  const outputs = new Set(model.outputs.map((t) => t.sourceLayer));
  return model.layers.filter((layer) => {
    const cls = layer.getClassName();
    const eligible = CONV_CLASSES.has(cls) || (cls === 'Dense' && options.includeDense);
    return eligible && (options.includeClassifier || !outputs.has(layer)) && layer.weights.length > 0;
  });
}

/**
 * Masks (1 = kept) that zero exactly round(sparsity · total) of the given kernels' weights, the
 * smallest in absolute value over all kernels together (ties broken by position, so the count is exact).
 */
export function globalMagnitudeMasks(kernels: Float32Array[], sparsity: number): { masks: Uint8Array[]; threshold: number } {
  const total = kernels.reduce((n, k) => n + k.length, 0);
  const toPrune = Math.min(total, Math.round(sparsity * total));
  const masks = kernels.map((k) => new Uint8Array(k.length).fill(1));
  if (toPrune === 0) return { masks, threshold: 0 };
  const magnitudes = new Float32Array(total);
  let offset = 0;
  for (const k of kernels) {
    for (let i = 0; i < k.length; i++) magnitudes[offset + i] = Math.abs(k[i]);
    offset += k.length;
  }
  const threshold = magnitudes.slice().sort()[toPrune - 1];
  // Everything strictly below the threshold goes, then weights equal to it until the count is met.
  let strictlyBelow = 0;
  for (const m of magnitudes) if (m < threshold) strictlyBelow++;
  let tiesLeft = toPrune - strictlyBelow;
  kernels.forEach((k, j) => {
    for (let i = 0; i < k.length; i++) {
      const m = Math.abs(k[i]);
      if (m < threshold || (m === threshold && tiesLeft-- > 0)) masks[j][i] = 0;
    }
  });
  return { masks, threshold };
}

/** A copy of a model with its own weights (serialised in memory and loaded back), leaving the original untouched. */
export async function cloneLayersModel(model: tf.LayersModel): Promise<tf.LayersModel> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return tf.loadLayersModel(tf.io.fromMemory(artifacts!));
}

async function prune(input: PruningInput, config: MagnitudeConfig, ctx: StageContext): Promise<PruningOutput> {
  throwIfAborted(ctx.signal);
  const source = input.model;
  const layers = prunableLayers(source.model, config);
  const kernels: PrunableKernel[] = [];
  for (const layer of layers) {
    const weight = layer.weights[0];
    const value = weight.read();
    kernels.push({ layer, weightName: weight.originalName, values: (await value.data()) as Float32Array });
  }
  if (kernels.length === 0) {
    throw new Error(`model ${source.name} has no conv or dense kernels to prune with these settings (includeDense=${config.includeDense}, includeClassifier=${config.includeClassifier})`);
  }
  const { masks: magnitudeMasks, threshold } = globalMagnitudeMasks(kernels.map((k) => k.values), config.sparsity);
  ctx.report({ step: 1, total: 2 });

  const model = await cloneLayersModel(source.model);
  const masks: Record<string, Uint8Array> = {};
  const transformLog: PruningOutput['transformLog'] = [];
  let prunable = 0;
  let kept = 0;
  kernels.forEach((kernel, j) => {
    const mask = magnitudeMasks[j];
    // A weight masked by an earlier stage stays masked.
    const previous = source.masks?.[kernel.weightName];
    if (previous && previous.length === mask.length) for (let i = 0; i < mask.length; i++) mask[i] &= previous[i];
    const values = kernel.values.slice();
    let layerKept = 0;
    for (let i = 0; i < values.length; i++) {
      if (mask[i]) layerKept++;
      else values[i] = 0;
    }
    const target = model.getLayer(kernel.layer.name);
    const current = target.getWeights();
    const masked = tf.tensor(values, current[0].shape);
    target.setWeights([masked, ...current.slice(1)]);
    masked.dispose();
    masks[kernel.weightName] = mask;
    prunable += values.length;
    kept += layerKept;
    transformLog.push({
      layer: kernel.layer.name,
      weight: kernel.weightName,
      total: values.length,
      kept: layerKept,
      sparsity: 1 - layerKept / values.length,
    });
  });
  // Masks of earlier stages on weights this stage did not touch are carried over.
  for (const [name, mask] of Object.entries(source.masks ?? {})) if (!(name in masks)) masks[name] = mask;

  const { params, zeros } = await countZeros(model);
  ctx.report({ step: 2, total: 2 });
  const handle: ModelHandle = { name: `${source.name}-magnitude-${Math.round(config.sparsity * 100)}`, model, spec: source.spec, masks };
  return {
    model: handle,
    metrics: {
      sparsity: 1 - kept / prunable,
      targetSparsity: config.sparsity,
      threshold,
      prunableParams: prunable,
      zeroFraction: zeros / params,
      params,
      nonzeroParams: params - zeros,
    },
    transformLog,
  };
}

/** Parameters of a model and how many of them are exactly zero (all weights, trainable or not). */
export async function countZeros(model: tf.LayersModel): Promise<{ params: number; zeros: number }> {
  let params = 0;
  let zeros = 0;
  for (const weight of model.weights) {
    const values = await weight.read().data();
    params += values.length;
    for (const v of values) if (v === 0) zeros++;
  }
  return { params, zeros };
}

/**
 * Global unstructured magnitude pruning: one threshold over all chosen kernels zeroes the
 * smallest weights; masks (1 = kept) record which, so later training can keep them at zero.
 */
export const plugin: PruningPlugin<MagnitudeConfig> = {
  name: 'magnitude',
  kind: 'pruning',
  version: '1.0.0',
  description:
    'Global unstructured magnitude pruning: zeroes the given fraction of conv (and dense) kernel weights with the smallest ' +
    'absolute values, one threshold over all layers, and returns masks. The output layer is kept unless includeClassifier. ' +
    'Metrics: sparsity (masked fraction of prunable weights), zeroFraction (zeros among all parameters), params, nonzeroParams.',
  configSchema: magnitudeConfigSchema,
  inputs: ['model'],
  output: 'pruned-model',
  prune,
};
