import * as tf from '@tensorflow/tfjs';
import { throwIfDeviceErrors } from '../tensors/backend';
import { type ImageSet, imageSize } from '../data/image-set';
import { PluginInputError, StageCancelledError, type StageCheckpoint } from '../plugins/contracts';
import { SeededRandom } from '../random';
import { augmentInto } from './augment';
import { createOptimizer, trainableParams, type OptimizerParam } from './optimizers';
import { yieldToEventLoop } from '../event-loop';
import { loadTrainerCheckpoint, saveTrainerCheckpoint, type TrainerPosition } from './train-checkpoint';

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  optimizer: 'sgd' | 'adam';
  /** Peak learning rate (reached after warm-up). */
  learningRate: number;
  /** SGD momentum; default 0.9. Ignored by Adam. */
  momentum?: number;
  /**
   * Weight decay on conv/dense kernels only (not BN, not biases); default 0. For `sgd` it is L2
   * added to the gradient (= wd/2·‖w‖² in the loss, PyTorch semantics); for `adam` it is
   * decoupled (AdamW).
   */
  weightDecay?: number;
  /** `cosine` decays from the peak to 0 over all steps after warm-up; default `cosine`. */
  schedule?: 'cosine' | 'constant';
  /** Linear warm-up from lr/warmupSteps to lr over these many steps; default 0. */
  warmupSteps?: number;
  augment?: { flip?: boolean; cropPadding?: number };
  /** Seeds shuffling and augmentation. */
  seed: number;
  /**
   * Pruning masks keyed by weight name (LayerVariable.originalName, e.g. `conv1/kernel`), 1 = kept.
   * Masked weights are zeroed before training and after every update, so they stay pruned.
   */
  masks?: Record<string, Uint8Array>;
}

export interface TrainBatch {
  images: tf.Tensor4D;
  labels: tf.Tensor1D;
  /**
   * Keeps a scalar made inside the loss (a loss term, say) and reads it after the step, without a
   * synchronous read (webgpu has none under Node); its value arrives in `onStep`'s `metrics.extra`.
   */
  keepMetric(name: string, value: tf.Scalar): void;
  /** Index of each batch image in the ImageSet (to look up teacher logits, contexts...). */
  indices: Int32Array;
}

export interface TrainStepMetrics {
  loss: number;
  lr: number;
  /** Training accuracy of the batch (present when the loss is the default cross-entropy). */
  accuracy?: number;
  /** Scalars the loss kept with `batch.keepMetric`, by name. */
  extra?: Record<string, number>;
}

export interface TrainHooks {
  signal?: AbortSignal;
  /** Called after each step; `step` counts from 1 to `total`. */
  onStep?(step: number, total: number, metrics: TrainStepMetrics): void;
  /**
   * Replaces the default cross-entropy (mean over the batch), e.g. for distillation. Called inside
   * the gradient tape: tensors it makes are freed by the trainer; it must not dispose its inputs.
   */
  lossFn?: (logits: tf.Tensor2D, batch: TrainBatch) => tf.Scalar;
  /**
   * Saves weights, optimizer slots, step and generator state every `checkpoint.every` steps and, when a
   * checkpoint exists at the start, continues from it: the result is the same as an uninterrupted run.
   */
  checkpoint?: StageCheckpoint;
  /**
   * Replaces the forward pass and the loss (for methods that need intermediate features or extra
   * heads): called inside the gradient tape with the batch; `model` is then only used to check the
   * data and for masks. Same disposal rules as `lossFn`; takes precedence over it.
   */
  batchLoss?: (batch: TrainBatch) => tf.Scalar;
  /** The parameters the optimizer trains; default the model's trainable weights. */
  params?: OptimizerParam[];
  /**
   * Other models trained alongside (heads, encoders) whose every weight a checkpoint must hold, their
   * BatchNorm moving statistics included (`params` lists only what the optimizer trains).
   */
  checkpointModels?: tf.LayersModel[];
}

export interface TrainSummary {
  steps: number;
  epochs: number;
  /** Loss of every step, in order. */
  losses: number[];
  /** Mean loss over the last epoch's steps. */
  finalLoss: number;
  /** Mean batch accuracy over the last epoch (default loss only). */
  finalAccuracy?: number;
  wallMs: number;
}

/** Bad training options, or data that does not fit the model. */
export class TrainingInputError extends PluginInputError {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingInputError';
  }
}

/** The loss became NaN or infinite; the model keeps the weights of the last finite step. */
export class TrainingDivergedError extends Error {
  constructor(
    readonly step: number,
    readonly loss: number,
  ) {
    super(`training diverged at step ${step}: loss is ${loss}; lower the learning rate or add warm-up steps`);
    this.name = 'TrainingDivergedError';
  }
}

/** Learning rate at 0-based `step` of `totalSteps` under the options' schedule and warm-up. */
export function learningRateAt(step: number, totalSteps: number, options: Pick<TrainOptions, 'learningRate' | 'schedule' | 'warmupSteps'>): number {
  const base = options.learningRate;
  const warmup = Math.min(options.warmupSteps ?? 0, totalSteps);
  if (step < warmup) return (base * (step + 1)) / warmup;
  if ((options.schedule ?? 'cosine') === 'constant') return base;
  const span = totalSteps - warmup;
  if (span <= 0) return base;
  return base * 0.5 * (1 + Math.cos((Math.PI * (step - warmup)) / span));
}

/** Mean softmax cross-entropy of logits against integer labels. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const logProbs = tf.logSoftmax(logits);
    const oneHot = tf.oneHot(tf.cast(labels, 'int32'), logits.shape[1]);
    return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, logProbs), -1)));
  });
}

function checkOptions(o: TrainOptions): void {
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  const nonNegative = (v: number | undefined) => v === undefined || (Number.isFinite(v) && v >= 0);
  if (!positiveInt(o.epochs)) throw new TrainingInputError(`epochs must be a positive integer; got ${o.epochs}`);
  if (!positiveInt(o.batchSize)) throw new TrainingInputError(`batchSize must be a positive integer; got ${o.batchSize}`);
  if (o.optimizer !== 'sgd' && o.optimizer !== 'adam') throw new TrainingInputError(`optimizer must be "sgd" or "adam"; got ${JSON.stringify(o.optimizer)}`);
  if (!(Number.isFinite(o.learningRate) && o.learningRate > 0)) throw new TrainingInputError(`learningRate must be a positive number; got ${o.learningRate}`);
  if (o.momentum !== undefined && !(o.momentum >= 0 && o.momentum < 1)) throw new TrainingInputError(`momentum must be in [0, 1); got ${o.momentum}`);
  if (!nonNegative(o.weightDecay)) throw new TrainingInputError(`weightDecay must be ≥ 0; got ${o.weightDecay}`);
  if (o.schedule !== undefined && o.schedule !== 'cosine' && o.schedule !== 'constant') {
    throw new TrainingInputError(`schedule must be "cosine" or "constant"; got ${JSON.stringify(o.schedule)}`);
  }
  if (o.warmupSteps !== undefined && !(Number.isInteger(o.warmupSteps) && o.warmupSteps >= 0)) {
    throw new TrainingInputError(`warmupSteps must be a non-negative integer; got ${o.warmupSteps}`);
  }
  const pad = o.augment?.cropPadding ?? 0;
  if (!(Number.isInteger(pad) && pad >= 0)) throw new TrainingInputError(`augment.cropPadding must be a non-negative integer; got ${pad}`);
}

function checkData(model: tf.LayersModel, data: ImageSet): void {
  if (data.count < 1) throw new TrainingInputError('the training set is empty');
  if (data.images.length !== data.count * imageSize(data) || data.labels.length !== data.count) {
    throw new TrainingInputError(`the training set is inconsistent: ${data.count} images of ${JSON.stringify(data.shape)} need ${data.count * imageSize(data)} pixels and ${data.count} labels`);
  }
  const input = model.inputs[0].shape.slice(1);
  if (JSON.stringify(input) !== JSON.stringify(data.shape)) {
    throw new TrainingInputError(`the model takes images ${JSON.stringify(input)} but the data set holds ${JSON.stringify(data.shape)}`);
  }
  const classes = model.outputs[0].shape[1];
  if (classes == null || classes < data.numClasses) {
    throw new TrainingInputError(`the model outputs ${classes} classes but the data set has ${data.numClasses}`);
  }
  for (let i = 0; i < data.count; i++) {
    const l = data.labels[i];
    if (!(l >= 0 && l < classes)) throw new TrainingInputError(`label ${l} of image ${i} is outside 0..${classes - 1}`);
  }
}

/** Multiplies masked weights by their masks (0 = pruned). */
function applyMasks(model: tf.LayersModel, masks: Record<string, tf.Tensor>): void {
  for (const w of model.weights) {
    const mask = masks[w.originalName];
    if (mask) tf.tidy(() => (w.read() as tf.Variable).assign(tf.mul(w.read(), mask)));
  }
}

function maskTensors(model: tf.LayersModel, masks: Record<string, Uint8Array> | undefined): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  if (!masks) return out;
  const byName = new Map(model.weights.map((w) => [w.originalName, w]));
  for (const [name, mask] of Object.entries(masks)) {
    const w = byName.get(name);
    if (!w) throw new TrainingInputError(`mask names weight "${name}", which the model does not have`);
    const size = (w.shape as number[]).reduce((a, b) => a * b, 1);
    if (mask.length !== size) throw new TrainingInputError(`mask for "${name}" has ${mask.length} entries; the weight has ${size}`);
    out[name] = tf.tensor(Float32Array.from(mask), w.shape as number[]);
  }
  return out;
}

/**
 * Trains `model` in place on `data` (mini-batch, shuffled each epoch with the seed; the last partial
 * batch of an epoch is dropped when the set holds at least one full batch). BatchNorm runs in
 * training mode and its moving statistics update (tf.layers does this in eager `apply`).
 */
export async function trainClassifier(model: tf.LayersModel, data: ImageSet, options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainSummary> {
  checkOptions(options);
  checkData(model, data);
  const started = performance.now();
  const random = new SeededRandom(options.seed);
  const size = imageSize(data);
  const batchSize = Math.min(options.batchSize, data.count);
  const stepsPerEpoch = Math.floor(data.count / batchSize);
  const totalSteps = stepsPerEpoch * options.epochs;
  const augment = options.augment ?? {};
  const augmenting = augment.flip === true || (augment.cropPadding ?? 0) > 0;

  const params = hooks.params ?? trainableParams(model);
  const variables = params.map((p) => p.variable);
  const optimizer = createOptimizer(params, { kind: options.optimizer, momentum: options.momentum, weightDecay: options.weightDecay });
  const masks = maskTensors(model, options.masks);
  applyMasks(model, masks);

  const batchImages = new Float32Array(batchSize * size);
  const batchLabels = new Int32Array(batchSize);
  const losses: number[] = [];
  let epochLoss = 0;
  let epochCorrect = 0;
  let step = 0;
  // Everything a checkpoint holds: the model's weights (BN moving statistics too) and any other trained variable.
  const tracked = [
    ...new Set([...[model, ...(hooks.checkpointModels ?? [])].flatMap((m) => m.weights.map((w) => w.read() as tf.Variable)), ...variables]),
  ];
  let resume: TrainerPosition | undefined;
  try {
    resume = hooks.checkpoint ? await loadTrainerCheckpoint(hooks.checkpoint, tracked, optimizer) : undefined;
    if (resume) {
      step = resume.step;
      losses.push(...resume.losses);
    }
    for (let epoch = resume?.epoch ?? 0; epoch < options.epochs; epoch++) {
      const resuming = resume !== undefined && epoch === resume.epoch;
      if (resuming) random.restoreState(resume!.epochRng);
      const epochRng = random.saveState();
      const order = random.permutation(data.count);
      if (resuming) random.restoreState(resume!.rng);
      epochLoss = resuming ? resume!.epochLoss : 0;
      epochCorrect = resuming ? resume!.epochCorrect : 0;
      for (let b = resuming ? resume!.batch : 0; b < stepsPerEpoch; b++) {
        if (hooks.signal?.aborted) throw new StageCancelledError();
        const indices = order.slice(b * batchSize, (b + 1) * batchSize);
        for (let i = 0; i < batchSize; i++) {
          const j = indices[i];
          const src = data.images.subarray(j * size, (j + 1) * size);
          const dst = batchImages.subarray(i * size, (i + 1) * size);
          if (augmenting) augmentInto(src, dst, data.shape, augment, random);
          else dst.set(src);
          batchLabels[i] = data.labels[j];
        }
        const lr = learningRateAt(step, totalSteps, options);
        const images = tf.tensor4d(batchImages, [batchSize, ...data.shape]);
        const labels = tf.tensor1d(batchLabels, 'int32');
        const kept = new Map<string, tf.Scalar>();
        const keepMetric = (name: string, metric: tf.Scalar) => {
          tf.dispose(kept.get(name));
          kept.set(name, tf.keep(tf.clone(metric)));
        };
        const batch: TrainBatch = { images, labels, indices, keepMetric };
        let correct: tf.Scalar | undefined;
        let value: tf.Scalar | undefined;
        let grads: tf.NamedTensorMap = {};
        try {
          ({ value, grads } = tf.variableGrads(() => {
            if (hooks.batchLoss) return hooks.batchLoss(batch);
            const logits = model.apply(images, { training: true }) as tf.Tensor2D;
            if (!hooks.lossFn) correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), labels), 'float32')));
            return hooks.lossFn ? hooks.lossFn(logits, batch) : crossEntropy(logits, labels);
          }, variables));
          const loss = (await value.data())[0];
          throwIfDeviceErrors();
          if (!Number.isFinite(loss)) throw new TrainingDivergedError(step + 1, loss);
          // A variable the loss does not reach gets no gradient; it is stepped with zeros (momentum/decay still apply).
          tf.tidy(() => optimizer.step(variables.map((v) => grads[v.name] ?? tf.zerosLike(v)), lr));
          if (Object.keys(masks).length > 0) applyMasks(model, masks);
          const accuracy = correct ? (await correct.data())[0] / batchSize : undefined;
          const extra = kept.size > 0 ? await readMetrics(kept) : undefined;
          losses.push(loss);
          epochLoss += loss;
          if (accuracy !== undefined) epochCorrect += accuracy;
          step += 1;
          hooks.onStep?.(step, totalSteps, { loss, lr, ...(accuracy === undefined ? {} : { accuracy }), ...(extra === undefined ? {} : { extra }) });
          if (hooks.checkpoint && step % hooks.checkpoint.every === 0 && step < totalSteps) {
            const epochEnds = b + 1 === stepsPerEpoch;
            const position: TrainerPosition = {
              step,
              epoch: epochEnds ? epoch + 1 : epoch,
              batch: epochEnds ? 0 : b + 1,
              epochRng: epochEnds ? random.saveState() : epochRng,
              rng: random.saveState(),
              losses,
              epochLoss: epochEnds ? 0 : epochLoss,
              epochCorrect: epochEnds ? 0 : epochCorrect,
              optimizerSteps: optimizer.state().steps,
            };
            await saveTrainerCheckpoint(hooks.checkpoint, position, tracked, optimizer);
          }
        } finally {
          tf.dispose([images, labels, ...(value ? [value] : []), ...(correct ? [correct] : []), ...Object.values(grads), ...kept.values()]);
        }
        await yieldToEventLoop();
      }
    }
  } finally {
    optimizer.dispose();
    tf.dispose(Object.values(masks));
  }
  return {
    steps: step,
    epochs: options.epochs,
    losses,
    finalLoss: epochLoss / stepsPerEpoch,
    ...(hooks.lossFn || hooks.batchLoss ? {} : { finalAccuracy: epochCorrect / stepsPerEpoch }),
    wallMs: performance.now() - started,
  };
}

/** The kept scalars' values, read asynchronously. */
async function readMetrics(kept: Map<string, tf.Scalar>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, t] of kept) out[name] = (await t.data())[0];
  return out;
}
