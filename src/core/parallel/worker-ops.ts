import * as tf from '@tensorflow/tfjs';
import { JOB_KINDS, type JobContext, type JobOutput } from './job-kinds';
import { ModelCache } from './model-cache';
import { applyUpdate, createReplica, disposeReplica, readReplicaWeights, shardGradients } from './replica-ops';

/** Tensor bookkeeping of one worker's TF.js (to check that work there is tidy). */
export interface WorkerStats {
  numTensors: number;
  numBytes: number;
  backend: string;
}

type WorkerOp = (payload: any, context: JobContext) => Promise<JobOutput<unknown>>;

/**
 * Everything a worker can be asked to do, by name: the job kinds of job-kinds.ts, the replica
 * operations of data-parallel training, and `stats`. Fixed when the module loads.
 */
export const WORKER_OPS: Readonly<Record<string, WorkerOp>> = Object.freeze({
  ...Object.fromEntries(Object.entries(JOB_KINDS).map(([name, kind]) => [name, (payload: any, context: JobContext) => kind.run(payload, context)])),
  'replica.create': createReplica,
  'replica.gradients': shardGradients,
  'replica.apply': applyUpdate,
  'replica.weights': readReplicaWeights,
  'replica.dispose': disposeReplica,
  stats: async (): Promise<JobOutput<WorkerStats>> => {
    const memory = tf.memory();
    return { result: { numTensors: memory.numTensors, numBytes: memory.numBytes, backend: tf.getBackend() } };
  },
  'models.clear': async (_payload: unknown, context: JobContext): Promise<JobOutput<null>> => {
    await context.models.clear();
    return { result: null };
  },
});

export function newWorkerContext(): JobContext {
  return { models: new ModelCache() };
}
