/**
 * In-stage checkpoints of the trainer (the path the kd plugin takes): a run stopped after a checkpoint
 * and continued from it ends with exactly the weights, BN statistics and losses of an uninterrupted run,
 * for SGD-momentum and Adam, with augmentation and across an epoch boundary.
 */
import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../../src/core/models/zoo';
import type { ModelSpec } from '../../src/core/models/model-spec';
import { StageCancelledError, type StageCheckpoint } from '../../src/core/plugins/contracts';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { trainClassifier, type TrainOptions } from '../../src/core/training/trainer';
import { mnistSample } from '../training/mnist-sample';

const spec: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 0.25 };

beforeAll(async () => {
  await initTensorBackend('wasm');
});

/** A checkpoint slot in memory, recording the steps it was saved at. */
function memoryCheckpoint(every: number): StageCheckpoint & { saved: number[]; state?: Buffer } {
  const slot: StageCheckpoint & { saved: number[]; state?: Buffer } = {
    every,
    saved: [],
    load: async () => slot.state,
    save: async (state, step) => {
      slot.state = Buffer.from(state);
      slot.saved.push(step);
    },
  };
  return slot;
}

async function weightsOf(model: tf.LayersModel): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const w of model.weights) out.push((await w.read().data()) as Float32Array);
  return out;
}

describe.each([
  ['sgd', { epochs: 2, batchSize: 16, optimizer: 'sgd', learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4, seed: 3, augment: { cropPadding: 2 } }],
  ['adam', { epochs: 2, batchSize: 16, optimizer: 'adam', learningRate: 0.003, weightDecay: 1e-3, seed: 4, warmupSteps: 2 }],
] as Array<[string, TrainOptions]>)('trainer checkpoints (%s)', (_name, options) => {
  it('resuming from a checkpoint gives the same weights and losses as never stopping', async () => {
    const data = mnistSample(0, 96); // 6 steps per epoch, 12 in all
    const reference = buildModel(spec, 1);
    const uninterrupted = await trainClassifier(reference, data, options);
    const expected = await weightsOf(reference);
    reference.dispose();

    // First attempt: checkpoints at steps 4 and 8 (8 is in the second epoch), stopped after step 9.
    const checkpoint = memoryCheckpoint(4);
    const controller = new AbortController();
    const first = buildModel(spec, 1);
    const firstSteps: number[] = [];
    await expect(
      trainClassifier(first, data, options, {
        checkpoint,
        signal: controller.signal,
        onStep: (step) => {
          firstSteps.push(step);
          if (step === 9) controller.abort();
        },
      }),
    ).rejects.toBeInstanceOf(StageCancelledError);
    first.dispose();
    expect(checkpoint.saved).toEqual([4, 8]);

    // Second attempt on a differently initialised model: the checkpoint replaces its weights.
    const second = buildModel(spec, 99);
    const secondSteps: number[] = [];
    const resumed = await trainClassifier(second, data, options, { checkpoint, onStep: (step) => secondSteps.push(step) });
    expect(secondSteps[0]).toBe(9);
    expect(secondSteps[secondSteps.length - 1]).toBe(12);
    expect(resumed.steps).toBe(12);
    expect(resumed.losses).toEqual(uninterrupted.losses);
    expect(resumed.finalLoss).toBeCloseTo(uninterrupted.finalLoss, 10);
    const actual = await weightsOf(second);
    second.dispose();
    expect(actual.length).toBe(expected.length);
    actual.forEach((values, i) => expect(Array.from(values)).toEqual(Array.from(expected[i])));
  });
});

it('refuses a checkpoint of another model instead of loading it', async () => {
  const data = mnistSample(0, 32);
  const options: TrainOptions = { epochs: 1, batchSize: 16, optimizer: 'sgd', learningRate: 0.01, seed: 1 };
  const checkpoint = memoryCheckpoint(1);
  const small = buildModel(spec, 1);
  const controller = new AbortController();
  await expect(trainClassifier(small, data, options, { checkpoint, signal: controller.signal, onStep: () => controller.abort() })).rejects.toBeInstanceOf(StageCancelledError);
  small.dispose();
  const wider = buildModel({ ...spec, width: 0.5 }, 1);
  await expect(trainClassifier(wider, data, options, { checkpoint })).rejects.toThrow(/different model/);
  wider.dispose();
});

it('keeps the tensor count flat across saving and loading checkpoints', async () => {
  const data = mnistSample(0, 64);
  const options: TrainOptions = { epochs: 1, batchSize: 16, optimizer: 'adam', learningRate: 0.001, seed: 2 };
  const model = buildModel(spec, 1);
  const checkpoint = memoryCheckpoint(1);
  const before = tf.memory().numTensors;
  const controller = new AbortController();
  await expect(trainClassifier(model, data, options, { checkpoint, signal: controller.signal, onStep: (s) => s === 2 && controller.abort() })).rejects.toBeInstanceOf(StageCancelledError);
  await trainClassifier(model, data, options, { checkpoint });
  expect(tf.memory().numTensors).toBe(before);
  model.dispose();
});
