import * as tf from '@tensorflow/tfjs';
import type { ModelSpec } from '../../core/models/model-spec';
import { buildModel } from '../../core/models/zoo';
import { SeededRandom } from '../../core/random';
import { trainableParams, type OptimizerParam } from '../../core/training/optimizers';

/**
 * DecAug's network: a zoo backbone up to its penultimate features f (the input of its `logits`
 * layer), a linear category branch and a linear context branch on f (as in the reference), a
 * classifier on each branch, and a final classifier on [category feature, context feature].
 */
export interface DecAugNet {
  /** images → final logits: backbone, both branches and the final classifier (what is exported). */
  inference: tf.LayersModel;
  /** images → [f, category feature, context feature]; shares the inference model's layers. */
  trunk: tf.LayersModel;
  categoryBranch: tf.layers.Layer;
  contextBranch: tf.layers.Layer;
  categoryHead: tf.layers.Layer;
  contextHead: tf.layers.Layer;
  finalClassifier: tf.layers.Layer;
  /** Everything trained: the inference model's weights and both heads. */
  params(): OptimizerParam[];
  /** Frees what the exported model does not hold (both heads). */
  disposeTrainingOnly(): void;
}

/** The kernel [in, out] of a dense layer (as the variable, so reads are differentiated). */
export function denseKernel(layer: tf.layers.Layer): tf.Tensor2D {
  const w = layer.trainableWeights.find((v) => /(^|\/)kernel$/.test(v.originalName));
  if (!w) throw new Error(`layer ${layer.name} has no kernel`);
  return w.read() as tf.Tensor2D;
}

export function buildDecAugNet(spec: ModelSpec, branchUnits: number, numContexts: number, seed: number): DecAugNet {
  const random = new SeededRandom(seed);
  const base = buildModel(spec, random.deriveSeed());
  const zooLogits = base.getLayer('logits');
  const feature = zooLogits.input as tf.SymbolicTensor;
  // The zoo's own classifier is replaced; free its weights now.
  zooLogits.dispose();
  const dense = (name: string, units: number) =>
    tf.layers.dense({ name, units, kernelInitializer: tf.initializers.glorotUniform({ seed: random.deriveSeed() }) });
  const categoryBranch = dense('category_branch', branchUnits);
  const contextBranch = dense('context_branch', branchUnits);
  const finalClassifier = dense('final_logits', spec.numClasses);
  const categoryHead = dense('category_logits', spec.numClasses);
  const contextHead = dense('context_logits', numContexts);
  const categoryFeature = categoryBranch.apply(feature) as tf.SymbolicTensor;
  const contextFeature = contextBranch.apply(feature) as tf.SymbolicTensor;
  const joined = tf.layers.concatenate({ name: 'branches', axis: -1 }).apply([categoryFeature, contextFeature]) as tf.SymbolicTensor;
  const logits = finalClassifier.apply(joined) as tf.SymbolicTensor;
  const inference = tf.model({ name: `decaug-${base.name}`, inputs: base.inputs, outputs: logits });
  const trunk = tf.model({ name: `decaug-trunk-${base.name}`, inputs: base.inputs, outputs: [feature, categoryFeature, contextFeature] });
  // Build the heads' weights (they are applied eagerly in training).
  categoryHead.apply(tf.input({ shape: [branchUnits] }));
  contextHead.apply(tf.input({ shape: [branchUnits] }));
  return {
    inference,
    trunk,
    categoryBranch,
    contextBranch,
    categoryHead,
    contextHead,
    finalClassifier,
    params: () => [
      ...trainableParams(inference),
      ...[categoryHead, contextHead].flatMap((l) => l.trainableWeights.map((w) => ({ variable: w.read() as tf.Variable, decay: /kernel$/.test(w.originalName) }))),
    ],
    disposeTrainingOnly: () => {
      categoryHead.dispose();
      contextHead.dispose();
    },
  };
}
