import * as tf from '@tensorflow/tfjs';
import { createOptimizer, type OptimizerSettings, type ParamOptimizer, trainableParams } from '../training/optimizers';
import { type SerializedModel, loadSerializedModel, packTensors, packedLayout, type PackedLayout, unpackViews } from './model-transfer';
import type { JobOutput } from './job-kinds';
import { transferablesOf } from './protocol';
import { trainingLoss } from './training-losses';

/**
 * The worker side of data-parallel training: one model replica per trainer, its own optimizer, the
 * shard's gradients out and the averaged update in. Every replica applies the identical averaged
 * gradients with an identical optimizer, so replicas stay bit-identical without sending weights.
 */

export interface ReplicaCreate {
  replicaId: string;
  model: SerializedModel;
  optimizer: OptimizerSettings;
  loss: string;
}

export interface ReplicaLayout {
  trainable: PackedLayout;
  nonTrainable: PackedLayout;
  /** Every weight in `model.weights` order (what `getWeights`/`setWeights` use). */
  all: PackedLayout;
}

export interface ShardGradientsRequest {
  replicaId: string;
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

export interface ShardGradients {
  count: number;
  /** Mean loss over the shard. */
  loss: number;
  /** Correctly classified images of the shard. */
  correct: number;
  /** Gradients of the mean shard loss, packed in trainable-weight order. */
  gradients: Float32Array;
  /** Non-trainable weights (BatchNorm moving statistics) after this shard's forward pass, packed. */
  nonTrainable: Float32Array;
}

export interface ReplicaUpdate {
  replicaId: string;
  gradients: Float32Array;
  nonTrainable: Float32Array;
  learningRate: number;
}

interface Replica {
  model: tf.LayersModel;
  optimizer: ParamOptimizer;
  variables: tf.Variable[];
  loss: (logits: tf.Tensor2D, labels: tf.Tensor1D) => tf.Scalar;
  layout: ReplicaLayout;
}

const replicas = new Map<string, Replica>();

function replica(id: string): Replica {
  const r = replicas.get(id);
  if (r === undefined) throw new Error(`no model replica "${id}" in this worker (created? disposed?)`);
  return r;
}

function layoutOf(weights: tf.LayerVariable[]): PackedLayout {
  return packedLayout(weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] })));
}

export async function createReplica(req: ReplicaCreate): Promise<JobOutput<ReplicaLayout>> {
  if (replicas.has(req.replicaId)) throw new Error(`model replica "${req.replicaId}" already exists`);
  const loss = trainingLoss(req.loss);
  const model = await loadSerializedModel(req.model);
  const params = trainableParams(model);
  const layout: ReplicaLayout = { trainable: layoutOf(model.trainableWeights), nonTrainable: layoutOf(model.nonTrainableWeights), all: layoutOf(model.weights) };
  replicas.set(req.replicaId, { model, optimizer: createOptimizer(params, req.optimizer), variables: params.map((p) => p.variable), loss, layout });
  return { result: layout };
}

export async function shardGradients(req: ShardGradientsRequest): Promise<JobOutput<ShardGradients>> {
  const r = replica(req.replicaId);
  const [h, w, c] = r.model.inputs[0].shape.slice(1) as number[];
  const images = tf.tensor4d(req.images, [req.count, h, w, c]);
  const labels = tf.tensor1d(req.labels, 'int32');
  let correct: tf.Scalar | undefined;
  let value: tf.Scalar | undefined;
  let grads: tf.NamedTensorMap = {};
  try {
    ({ value, grads } = tf.variableGrads(() => {
      const logits = r.model.apply(images, { training: true }) as tf.Tensor2D;
      correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), labels), 'float32')));
      return r.loss(logits, labels);
    }, r.variables));
    const ordered = tf.tidy(() => r.variables.map((v) => grads[v.name] ?? tf.zerosLike(v)));
    let gradients: Float32Array;
    try {
      gradients = await packTensors(ordered);
    } finally {
      tf.dispose(ordered.filter((t) => !Object.values(grads).includes(t)));
    }
    const nonTrainable = await packTensors(r.model.nonTrainableWeights.map((nw) => nw.read()));
    const result: ShardGradients = { count: req.count, loss: (await value.data())[0], correct: (await correct!.data())[0], gradients, nonTrainable };
    return { result, transfer: transferablesOf(gradients, nonTrainable) };
  } finally {
    tf.dispose([images, labels, ...(value ? [value] : []), ...(correct ? [correct] : []), ...Object.values(grads)]);
  }
}

export async function applyUpdate(req: ReplicaUpdate): Promise<JobOutput<null>> {
  const r = replica(req.replicaId);
  tf.tidy(() => {
    const grads = unpackViews(req.gradients, r.layout.trainable).map((g, i) => tf.tensor(g, r.layout.trainable.shapes[i]));
    r.optimizer.step(grads, req.learningRate);
    const stats = unpackViews(req.nonTrainable, r.layout.nonTrainable);
    r.model.nonTrainableWeights.forEach((nw, i) => (nw.read() as tf.Variable).assign(tf.tensor(stats[i], r.layout.nonTrainable.shapes[i])));
  });
  return { result: null };
}

export async function readReplicaWeights(req: { replicaId: string }): Promise<JobOutput<Float32Array>> {
  const r = replica(req.replicaId);
  const weights = await packTensors(r.model.weights.map((w) => w.read()));
  return { result: weights, transfer: transferablesOf(weights) };
}

export async function disposeReplica(req: { replicaId: string }): Promise<JobOutput<null>> {
  const r = replicas.get(req.replicaId);
  if (r !== undefined) {
    replicas.delete(req.replicaId);
    r.optimizer.dispose();
    r.model.dispose();
  }
  return { result: null };
}
