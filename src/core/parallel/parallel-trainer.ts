import * as tf from '@tensorflow/tfjs';
import { type ImageSet, imageSize } from '../data/image-set';
import { yieldToEventLoop } from '../event-loop';
import { StageCancelledError } from '../plugins/contracts';
import { SeededRandom } from '../random';
import type { OptimizerSettings } from '../training/optimizers';
import { learningRateAt, type TrainOptions, TrainingDivergedError, TrainingInputError, type TrainSummary } from '../training/trainer';
import { serializeModel } from './model-transfer';
import type { ReplicaLayout, ShardGradients } from './replica-ops';
import { type TrainingLossName, trainingLoss } from './training-losses';
import type { WorkerPool } from './worker-pool';

export interface ParallelTrainerOptions {
  optimizer: OptimizerSettings;
  /** Loss by name (see training-losses.ts); default 'cross-entropy'. */
  loss?: TrainingLossName;
}

/** A batch as flat data: `count` images NHWC and their labels. */
export interface FlatBatch {
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

/** The averaged result of one batch over the workers, before it is applied. */
export interface AveragedUpdate {
  count: number;
  /** Mean loss over the batch (shard means weighted by shard size). */
  loss: number;
  accuracy: number;
  /** Gradients packed in trainable-weight order: Σ nᵢ·gᵢ / N over shards. */
  gradients: Float32Array;
  /** Non-trainable weights (BN moving statistics) after the step, averaged the same way. */
  nonTrainable: Float32Array;
}

let replicaCounter = 0;

/**
 * Data-parallel training over a WorkerPool: one replica of the model per worker, each batch split
 * into contiguous shards (one per worker), each worker computing the gradient of its shard's mean
 * loss; the main thread averages them weighted by shard size and broadcasts the average (through a
 * SharedArrayBuffer), and every worker steps its own copy of the optimizer with it, so replicas stay
 * identical without sending weights.
 *
 * BatchNorm: each shard normalises with its own batch statistics (like PyTorch's DataParallel
 * without SyncBatchNorm), so gradients differ slightly from one full-batch pass; the moving mean and
 * variance of every replica are replaced by their shard-size-weighted average after each step.
 */
export class ParallelTrainer {
  private readonly sharedGradients: Float32Array;
  private readonly sharedNonTrainable: Float32Array;
  private disposed = false;

  private constructor(
    private readonly pool: WorkerPool,
    private readonly replicaId: string,
    readonly layout: ReplicaLayout,
    readonly inputShape: [number, number, number],
  ) {
    const nTrain = layout.trainable.offsets[layout.trainable.offsets.length - 1];
    const nStats = layout.nonTrainable.offsets[layout.nonTrainable.offsets.length - 1];
    this.sharedGradients = new Float32Array(new SharedArrayBuffer(nTrain * 4));
    this.sharedNonTrainable = new Float32Array(new SharedArrayBuffer(nStats * 4));
  }

  /** Sends `model` (topology + current weights) to every worker as a replica with its own optimizer. */
  static async create(pool: WorkerPool, model: tf.LayersModel, options: ParallelTrainerOptions): Promise<ParallelTrainer> {
    const loss = options.loss ?? 'cross-entropy';
    trainingLoss(loss);
    for (const w of model.weights) {
      if (w.dtype !== 'float32') throw new TrainingInputError(`parallel training needs float32 weights; ${w.originalName} is ${w.dtype}`);
    }
    const shape = model.inputs[0].shape.slice(1);
    if (shape.length !== 3 || shape.some((d) => d == null)) throw new TrainingInputError(`the model must take images [batch, h, w, c]; its input is ${JSON.stringify(model.inputs[0].shape)}`);
    const serialized = await serializeModel(model);
    const replicaId = `replica-${process.pid}-${++replicaCounter}`;
    const layouts = await Promise.all(
      Array.from({ length: pool.size }, (_, i) => pool.request<ReplicaLayout>(i, 'replica.create', { replicaId, model: serialized, optimizer: options.optimizer, loss })),
    );
    return new ParallelTrainer(pool, replicaId, layouts[0], shape as [number, number, number]);
  }

  /** Splits the batch over the workers and returns the averaged gradients; replicas are not stepped yet. */
  async computeUpdate(batch: FlatBatch): Promise<AveragedUpdate> {
    this.checkOpen();
    const size = this.inputShape[0] * this.inputShape[1] * this.inputShape[2];
    if (batch.count < 1 || batch.images.length !== batch.count * size || batch.labels.length !== batch.count) {
      throw new TrainingInputError(`a batch of ${batch.count} images of ${JSON.stringify(this.inputShape)} needs ${batch.count * size} pixels and ${batch.count} labels; got ${batch.images.length} and ${batch.labels.length}`);
    }
    const shards = Math.min(this.pool.size, batch.count);
    const results = await Promise.all(
      Array.from({ length: shards }, (_, i) => {
        const from = Math.floor((i * batch.count) / shards);
        const to = Math.floor(((i + 1) * batch.count) / shards);
        const images = batch.images.slice(from * size, to * size);
        const labels = batch.labels.slice(from, to);
        return this.pool.request<ShardGradients>(i, 'replica.gradients', { replicaId: this.replicaId, images, labels, count: to - from }, [images.buffer, labels.buffer]);
      }),
    );
    const gradients = weightedMean(results.map((r) => ({ weight: r.count, values: r.gradients })), batch.count);
    const nonTrainable = weightedMean(results.map((r) => ({ weight: r.count, values: r.nonTrainable })), batch.count);
    const loss = results.reduce((s, r) => s + r.loss * r.count, 0) / batch.count;
    const accuracy = results.reduce((s, r) => s + r.correct, 0) / batch.count;
    return { count: batch.count, loss, accuracy, gradients, nonTrainable };
  }

  /** Every replica applies the same averaged update with its optimizer and takes the averaged BN statistics. */
  async applyUpdate(update: AveragedUpdate, learningRate: number): Promise<void> {
    this.checkOpen();
    this.sharedGradients.set(update.gradients);
    this.sharedNonTrainable.set(update.nonTrainable);
    const payload = { replicaId: this.replicaId, gradients: this.sharedGradients, nonTrainable: this.sharedNonTrainable, learningRate };
    await Promise.all(Array.from({ length: this.pool.size }, (_, i) => this.pool.request(i, 'replica.apply', payload)));
  }

  /** One training step on `batch`; returns its loss and accuracy. */
  async step(batch: FlatBatch, learningRate: number): Promise<{ loss: number; accuracy: number }> {
    const update = await this.computeUpdate(batch);
    if (!Number.isFinite(update.loss)) return { loss: update.loss, accuracy: update.accuracy };
    await this.applyUpdate(update, learningRate);
    return { loss: update.loss, accuracy: update.accuracy };
  }

  /** Every weight of worker `index`'s replica, packed in `layout.all` order (replicas are meant to be identical). */
  replicaWeights(index: number): Promise<Float32Array> {
    this.checkOpen();
    return this.pool.request<Float32Array>(index, 'replica.weights', { replicaId: this.replicaId });
  }

  /** Copies the replicas' weights (worker 0's; all are identical) into `model`, which must have the same topology. */
  async copyWeightsTo(model: tf.LayersModel): Promise<void> {
    this.checkOpen();
    const packed = await this.replicaWeights(0);
    const { all } = this.layout;
    if (model.weights.length !== all.names.length || model.weights.some((w, i) => w.originalName !== all.names[i])) {
      throw new TrainingInputError(`model ${model.name} does not have the replica's weights (${all.names.length} weights: ${all.names.slice(0, 3).join(', ')}...)`);
    }
    const tensors = all.shapes.map((shape, i) => tf.tensor(packed.subarray(all.offsets[i], all.offsets[i + 1]), shape));
    try {
      model.setWeights(tensors);
    } finally {
      tf.dispose(tensors);
    }
  }

  /** Frees the replicas in the workers (the pool stays open). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(Array.from({ length: this.pool.size }, (_, i) => this.pool.request(i, 'replica.dispose', { replicaId: this.replicaId }).catch(() => undefined)));
  }

  private checkOpen(): void {
    if (this.disposed) throw new Error('this ParallelTrainer was disposed');
  }
}

function weightedMean(parts: { weight: number; values: Float32Array }[], total: number): Float32Array {
  const out = new Float32Array(parts[0].values.length);
  for (const { weight, values } of parts) {
    const w = weight / total;
    for (let i = 0; i < out.length; i++) out[i] += w * values[i];
  }
  return out;
}

/**
 * `trainClassifier` over a WorkerPool: the same shuffling (seeded), batching (last partial batch
 * dropped), learning-rate schedule and optimizers, each batch split across the workers by a
 * ParallelTrainer. Augmentation, masks and custom loss functions are not supported here (refused).
 * The trained weights are copied into `model` at the end.
 */
export async function trainClassifierInParallel(
  pool: WorkerPool,
  model: tf.LayersModel,
  data: ImageSet,
  options: TrainOptions,
  hooks: { signal?: AbortSignal; onStep?(step: number, total: number, metrics: { loss: number; lr: number; accuracy: number }): void } = {},
): Promise<TrainSummary> {
  if (options.augment?.flip || (options.augment?.cropPadding ?? 0) > 0) throw new TrainingInputError('parallel training does not augment yet; train on one thread (trainClassifier) to augment');
  if (options.masks !== undefined && Object.keys(options.masks).length > 0) throw new TrainingInputError('parallel training does not keep pruning masks; train on one thread (trainClassifier)');
  if (!(Number.isInteger(options.epochs) && options.epochs > 0)) throw new TrainingInputError(`epochs must be a positive integer; got ${options.epochs}`);
  if (!(Number.isInteger(options.batchSize) && options.batchSize > 0)) throw new TrainingInputError(`batchSize must be a positive integer; got ${options.batchSize}`);
  if (data.count < 1) throw new TrainingInputError('the training set is empty');
  const started = performance.now();
  const trainer = await ParallelTrainer.create(pool, model, {
    optimizer: { kind: options.optimizer, momentum: options.momentum, weightDecay: options.weightDecay },
  });
  const random = new SeededRandom(options.seed);
  const size = imageSize(data);
  const batchSize = Math.min(options.batchSize, data.count);
  const stepsPerEpoch = Math.floor(data.count / batchSize);
  const totalSteps = stepsPerEpoch * options.epochs;
  const losses: number[] = [];
  let epochLoss = 0;
  let epochAccuracy = 0;
  let step = 0;
  try {
    for (let epoch = 0; epoch < options.epochs; epoch++) {
      const order = random.permutation(data.count);
      epochLoss = 0;
      epochAccuracy = 0;
      for (let b = 0; b < stepsPerEpoch; b++) {
        if (hooks.signal?.aborted) throw new StageCancelledError();
        const images = new Float32Array(batchSize * size);
        const labels = new Int32Array(batchSize);
        for (let i = 0; i < batchSize; i++) {
          const j = order[b * batchSize + i];
          images.set(data.images.subarray(j * size, (j + 1) * size), i * size);
          labels[i] = data.labels[j];
        }
        const lr = learningRateAt(step, totalSteps, options);
        const { loss, accuracy } = await trainer.step({ images, labels, count: batchSize }, lr);
        if (!Number.isFinite(loss)) throw new TrainingDivergedError(step + 1, loss);
        losses.push(loss);
        epochLoss += loss;
        epochAccuracy += accuracy;
        step += 1;
        hooks.onStep?.(step, totalSteps, { loss, lr, accuracy });
        await yieldToEventLoop();
      }
    }
    await trainer.copyWeightsTo(model);
  } finally {
    await trainer.dispose();
  }
  return { steps: step, epochs: options.epochs, losses, finalLoss: epochLoss / stepsPerEpoch, finalAccuracy: epochAccuracy / stepsPerEpoch, wallMs: performance.now() - started };
}
