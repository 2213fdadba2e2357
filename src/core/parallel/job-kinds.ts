import { type InversionBatchConfig, type InversionBatchResult, invertBatch } from './inversion-job';
import { ModelCache } from './model-cache';
import type { SerializedModel } from './model-transfer';
import { UnknownJobKindError, transferablesOf } from './protocol';

/** What a job kind returns: its result and the buffers to move (not copy) back to the caller. */
export interface JobOutput<R> {
  result: R;
  transfer?: ArrayBuffer[];
}

/** Thread-local state a job kind may use (a worker's, or the main thread's for local runs). */
export interface JobContext {
  models: ModelCache;
}

export interface JobKind<P, R> {
  run(payload: P, context: JobContext): Promise<JobOutput<R>>;
}

/** One DeepInversion batch: the teacher travels as data (topology + weights), never as code. */
export interface InversionBatchJob {
  teacher: SerializedModel;
  targets: Int32Array;
  seed: number;
  config: InversionBatchConfig;
}

const inversionBatch: JobKind<InversionBatchJob, InversionBatchResult> = {
  async run(job, context) {
    const teacher = await context.models.get(job.teacher);
    const result = await invertBatch(teacher, job.targets, job.seed, job.config);
    return { result, transfer: transferablesOf(result.images, result.losses) };
  },
};

/**
 * The job kinds workers run, by name. Closed at start-up: a job names one of these and carries
 * data; nothing registers later and no message carries code.
 */
export const JOB_KINDS = Object.freeze({
  'deep-inversion.batch': inversionBatch,
});

export type JobKindName = keyof typeof JOB_KINDS;
type KindOf<K extends JobKindName> = (typeof JOB_KINDS)[K];
export type JobPayload<K extends JobKindName> = KindOf<K> extends JobKind<infer P, unknown> ? P : never;
export type JobResult<K extends JobKindName> = KindOf<K> extends JobKind<unknown, infer R> ? R : never;

export interface Job<K extends JobKindName = JobKindName> {
  kind: K;
  payload: JobPayload<K>;
}

export function jobKind(name: string): JobKind<unknown, unknown> {
  if (!Object.hasOwn(JOB_KINDS, name)) throw new UnknownJobKindError(name, Object.keys(JOB_KINDS));
  return JOB_KINDS[name as JobKindName] as JobKind<unknown, unknown>;
}

const mainThreadContext: JobContext = { models: new ModelCache() };

/** Runs a job on the calling thread with the same code a worker runs (reference results, single-thread baselines). */
export async function runJobHere<K extends JobKindName>(job: Job<K>): Promise<JobResult<K>> {
  const output = await jobKind(job.kind).run(job.payload, mainThreadContext);
  return output.result as JobResult<K>;
}

/** Disposes the models `runJobHere` kept loaded on this thread. */
export function clearJobModelsHere(): Promise<void> {
  return mainThreadContext.models.clear();
}
