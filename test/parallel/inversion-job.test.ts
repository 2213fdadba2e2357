import * as tf from '@tensorflow/tfjs';
import { buildModel } from '../../src/core/models/zoo';
import type { ModelSpec } from '../../src/core/models/model-spec';
import { clearJobModelsHere, type Job, runJobHere } from '../../src/core/parallel/job-kinds';
import { InversionJobError, invertBatch } from '../../src/core/parallel/inversion-job';
import { serializeModel } from '../../src/core/parallel/model-transfer';
import { UnknownJobKindError, WorkerJobError } from '../../src/core/parallel/protocol';
import { WorkerPool } from '../../src/core/parallel/worker-pool';
import { initTensorBackend } from '../../src/core/tensors/backend';
import { bnStatisticsLoss, tapBatchNormInputs } from '../../src/core/tensors/bn-taps';
import { crossEntropy, trainClassifier } from '../../src/core/training/trainer';
import { mnistSample } from '../training/mnist-sample';

const LENET: ModelSpec = { architecture: 'lenet5-bn', inputShape: [28, 28, 1], numClasses: 10, width: 1 };
const CONFIG = { iterations: 6, learningRate: 0.05, bnWeight: 0.5 };

let pool: WorkerPool;
let teacher: tf.LayersModel;

beforeAll(async () => {
  await initTensorBackend('wasm');
  pool = await WorkerPool.start({ size: 2, backend: 'wasm' });
  // A teacher with real (non-default) BN running statistics: a few steps on MNIST.
  teacher = buildModel(LENET, 21);
  await trainClassifier(teacher, mnistSample(0, 512), { epochs: 1, batchSize: 64, optimizer: 'adam', learningRate: 2e-3, seed: 1 });
});

afterAll(async () => {
  await pool?.close();
  await clearJobModelsHere();
  teacher?.dispose();
});

function targets(count: number, offset: number): Int32Array {
  return Int32Array.from({ length: count }, (_, i) => (i + offset) % 10);
}

test('two batches inverted concurrently on 2 workers equal the same jobs run on the main thread', async () => {
  const serialized = await serializeModel(teacher);
  const jobs: Job<'deep-inversion.batch'>[] = [
    { kind: 'deep-inversion.batch', payload: { teacher: serialized, targets: targets(16, 0), seed: 101, config: CONFIG } },
    { kind: 'deep-inversion.batch', payload: { teacher: serialized, targets: targets(16, 3), seed: 202, config: CONFIG } },
  ];
  const inWorkers = await pool.runInWorkers(jobs);
  for (const [i, job] of jobs.entries()) {
    const here = await runJobHere(job);
    const got = inWorkers[i];
    expect(got.shape).toEqual([16, 28, 28, 1]);
    expect(got.images.length).toBe(16 * 784);
    let worst = 0;
    for (let k = 0; k < here.images.length; k++) worst = Math.max(worst, Math.abs(got.images[k] - here.images[k]));
    expect(worst).toBeLessThan(1e-5);
    expect(Array.from(got.losses)).toEqual(Array.from(here.losses).map((l) => expect.closeTo(l, 5)));
    // The optimisation makes progress on its own objective.
    expect(got.losses[got.losses.length - 1]).toBeLessThan(got.losses[0]);
  }
  // Different seeds and targets give different batches.
  expect(inWorkers[0].images[0]).not.toBe(inWorkers[1].images[0]);
});

test('the first loss is CE to the targets + bnWeight · BN-statistics loss of the seeded noise', async () => {
  const t = targets(8, 5);
  const result = await invertBatch(teacher, t, 77, { ...CONFIG, iterations: 1 });
  const expected = tf.tidy(() => {
    const x = tf.randomNormal([8, 28, 28, 1], 0, 1, 'float32', 77);
    const { logits, taps } = tapBatchNormInputs(teacher)(x, { training: false });
    return tf.add(crossEntropy(logits as tf.Tensor2D, tf.tensor1d(t, 'int32')), tf.mul(bnStatisticsLoss(taps), CONFIG.bnWeight)).dataSync()[0];
  });
  expect(result.losses[0]).toBeCloseTo(expected, 4);
});

test('worker tensors stay flat across jobs (the teacher stays cached)', async () => {
  const serialized = await serializeModel(teacher);
  const job: Job<'deep-inversion.batch'> = { kind: 'deep-inversion.batch', payload: { teacher: serialized, targets: targets(4, 0), seed: 1, config: { ...CONFIG, iterations: 2 } } };
  await pool.runInWorkers([job, job]);
  const first = await pool.stats();
  await pool.runInWorkers([job, job, job, job]);
  const later = await pool.stats();
  expect(later.map((s) => s.numTensors)).toEqual(first.map((s) => s.numTensors));
});

test('bad jobs fail with clear errors', async () => {
  const serialized = await serializeModel(teacher);
  await expect(pool.runInWorkers([{ kind: 'rm -rf' as never, payload: {} as never }])).rejects.toThrow(UnknownJobKindError);
  const bad: Job<'deep-inversion.batch'> = { kind: 'deep-inversion.batch', payload: { teacher: serialized, targets: Int32Array.of(3, 12), seed: 1, config: CONFIG } };
  await expect(pool.runInWorkers([bad])).rejects.toThrow(WorkerJobError);
  await expect(pool.runInWorkers([bad])).rejects.toThrow(/target class 12 is outside 0..9/);
  await expect(invertBatch(teacher, Int32Array.of(1), 1, { ...CONFIG, iterations: 0 })).rejects.toThrow(InversionJobError);
  // Code cannot travel: a payload holding a function is refused before it reaches a worker.
  await expect(pool.request(0, 'stats', { run: () => 1 })).rejects.toThrow(/cannot be sent to a worker/);
  // The pool still works after a failed job.
  expect((await pool.stats()).length).toBe(2);
});
