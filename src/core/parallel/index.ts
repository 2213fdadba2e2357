export { WorkerPool, type WorkerPoolOptions } from './worker-pool';
export { WorkerJobError, WorkerPoolError, UnknownJobKindError } from './protocol';
export { JOB_KINDS, type Job, type JobKindName, type JobPayload, type JobResult, runJobHere, clearJobModelsHere } from './job-kinds';
export { invertBatch, InversionJobError, type InversionBatchConfig, type InversionBatchResult } from './inversion-job';
export { serializeModel, loadSerializedModel, type SerializedModel } from './model-transfer';
export { ParallelTrainer, trainClassifierInParallel, type ParallelTrainerOptions, type FlatBatch, type AveragedUpdate } from './parallel-trainer';
export { TRAINING_LOSSES, type TrainingLossName, UnknownTrainingLossError } from './training-losses';
export type { WorkerStats } from './worker-ops';
