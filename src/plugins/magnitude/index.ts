import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { ModelHandle } from '../../core/models/model-spec';
import { SeededRandom } from '../../core/random';
import { trainClassifier } from '../../core/training/trainer';
import { loadRound, saveRound } from './round-checkpoint';
import { PluginInputError, throwIfAborted, type PruningInput, type PruningOutput, type PruningPlugin, type StageContext } from '../../core/plugins/contracts';

export const magnitudeConfigSchema = z.strictObject({
  sparsity: z.number().min(0).max(0.999).default(0.5).describe('Fraction of the prunable weights to zero, chosen globally by magnitude'),
  includeDense: z.boolean().default(true).describe('Prune dense kernels as well as conv kernels'),
  includeClassifier: z.boolean().default(false).describe('Prune the final (output) layer too'),
  schedule: z
    .enum(['one-shot', 'gradual'])
    .default('one-shot')
    .describe('one-shot: prune once. gradual: prune in `steps` steps along a cubic schedule, fine-tuning on the data between'),
  steps: z.number().int().min(1).max(100).default(4).describe('gradual: number of pruning steps'),
  fineTune: z
    .strictObject({
      epochs: z.number().int().min(1).max(100).default(1).describe('Epochs of fine-tuning after each pruning step'),
      batchSize: z.number().int().min(1).max(4096).default(128),
      optimizer: z.enum(['sgd', 'adam']).default('adam'),
      learningRate: z.number().gt(0).max(10).default(0.001),
    })
    .default({ epochs: 1, batchSize: 128, optimizer: 'adam', learningRate: 0.001 })
    .describe('gradual: fine-tuning between pruning steps (masked weights stay zero)'),
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

/**
 * Sparsity after pruning step `step` (1-based) of `steps` on Zhu & Gupta's cubic schedule from
 * `initial` to `final`: s = final + (initial − final)(1 − step/steps)³. Prunes fast early, when many
 * weights are redundant, and slowly near the end.
 */
export function cubicSparsity(step: number, steps: number, initial: number, final: number): number {
  return final + (initial - final) * (1 - step / steps) ** 3;
}

interface PruneStepResult {
  masks: Record<string, Uint8Array>;
  transformLog: PruningOutput['transformLog'];
  prunable: number;
  kept: number;
  threshold: number;
}

/**
 * Zeroes, in `model` itself, the globally smallest weights of the chosen kernels to reach
 * `sparsity`; weights masked in `previous` stay masked.
 */
async function pruneInPlace(
  model: tf.LayersModel,
  config: Pick<MagnitudeConfig, 'includeDense' | 'includeClassifier'>,
  sparsity: number,
  previous: Record<string, Uint8Array> | undefined,
  modelName: string,
): Promise<PruneStepResult> {
  const kernels: PrunableKernel[] = [];
  for (const layer of prunableLayers(model, config)) {
    const weight = layer.weights[0];
    kernels.push({ layer, weightName: weight.originalName, values: (await weight.read().data()) as Float32Array });
  }
  if (kernels.length === 0) {
    throw new PluginInputError(
      `model ${modelName} has no conv or dense kernels to prune with these settings (includeDense=${config.includeDense}, includeClassifier=${config.includeClassifier})`,
    );
  }
  const { masks: magnitudeMasks, threshold } = globalMagnitudeMasks(kernels.map((k) => k.values), sparsity);
  const masks: Record<string, Uint8Array> = {};
  const transformLog: PruningOutput['transformLog'] = [];
  let prunable = 0;
  let kept = 0;
  kernels.forEach((kernel, j) => {
    const mask = magnitudeMasks[j];
    const earlier = previous?.[kernel.weightName];
    if (earlier && earlier.length === mask.length) for (let i = 0; i < mask.length; i++) mask[i] &= earlier[i];
    const values = kernel.values.slice();
    let layerKept = 0;
    for (let i = 0; i < values.length; i++) {
      if (mask[i]) layerKept++;
      else values[i] = 0;
    }
    const current = kernel.layer.getWeights();
    const masked = tf.tensor(values, current[0].shape);
    kernel.layer.setWeights([masked, ...current.slice(1)]);
    masked.dispose();
    masks[kernel.weightName] = mask;
    prunable += values.length;
    kept += layerKept;
    transformLog.push({ layer: kernel.layer.name, weight: kernel.weightName, total: values.length, kept: layerKept, sparsity: 1 - layerKept / values.length });
  });
  // Masks of earlier stages on weights this step did not touch are carried over.
  for (const [name, mask] of Object.entries(previous ?? {})) if (!(name in masks)) masks[name] = mask;
  return { masks, transformLog, prunable, kept, threshold };
}

async function prune(input: PruningInput, config: MagnitudeConfig, ctx: StageContext): Promise<PruningOutput> {
  throwIfAborted(ctx.signal);
  const source = input.model;
  const gradual = config.schedule === 'gradual';
  if (gradual && !input.data) {
    throw new PluginInputError('magnitude pruning with schedule "gradual" fine-tunes between steps and needs training data; give the pipeline a dataset or use schedule "one-shot"');
  }
  const steps = gradual ? config.steps : 1;
  const total = gradual ? steps * 2 : 1;
  const model = await cloneLayersModel(source.model);
  const random = new SeededRandom(ctx.seed);
  let result: PruneStepResult | undefined;
  let fineTuneLoss: number | undefined;
  try {
    // Gradual pruning resumes after the last completed round (prune + fine-tune) of a checkpoint.
    const resumed = gradual && ctx.checkpoint ? await loadRound(ctx.checkpoint, model, steps) : undefined;
    if (resumed) {
      result = resumed;
      fineTuneLoss = resumed.fineTuneLoss;
      for (let r = 0; r < resumed.round; r++) random.deriveSeed(); // the seeds those rounds' fine-tuning drew
      ctx.log.info({ round: resumed.round, steps }, 'magnitude pruning resumed from a checkpoint');
    }
    for (let step = (resumed?.round ?? 0) + 1; step <= steps; step++) {
      throwIfAborted(ctx.signal);
      const target = gradual ? cubicSparsity(step, steps, 0, config.sparsity) : config.sparsity;
      result = await pruneInPlace(model, config, target, result?.masks ?? source.masks, source.name);
      ctx.report({ step: gradual ? 2 * step - 1 : 1, total, metrics: { sparsity: 1 - result.kept / result.prunable } });
      if (!gradual) break;
      const summary = await trainClassifier(
        model,
        input.data!,
        { ...config.fineTune, seed: random.deriveSeed(), masks: result.masks },
        { signal: ctx.signal },
      );
      fineTuneLoss = summary.finalLoss;
      ctx.report({ step: 2 * step, total, metrics: { sparsity: 1 - result.kept / result.prunable, loss: fineTuneLoss } });
      if (ctx.checkpoint && step < steps) await saveRound(ctx.checkpoint, model, { ...result, round: step, steps, fineTuneLoss }, 2 * step);
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
  const { masks, transformLog, prunable, kept, threshold } = result!;
  const { params, zeros } = await countZeros(model);
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
      ...(fineTuneLoss !== undefined ? { pruningSteps: steps, fineTuneLoss } : {}),
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
    'schedule "gradual" reaches the target in `steps` steps on a cubic schedule, fine-tuning on the data in between. ' +
    'Metrics: sparsity (masked fraction of prunable weights), zeroFraction (zeros among all parameters), params, nonzeroParams.',
  configSchema: magnitudeConfigSchema,
  inputs: ['model'],
  output: 'pruned-model',
  prune,
};
