import type { z } from 'zod';
import type { ImageSet } from '../data/image-set';
import type { ModelHandle } from '../models/model-spec';
import type { Logger } from '../logging/logger';

export const PLUGIN_KINDS = ['synthesis', 'distillation', 'pruning'] as const;
export type PluginKind = (typeof PLUGIN_KINDS)[number];

/**
 * What flows between pipeline stages. A synthetic dataset is a dataset; a pruned model is a model.
 */
export const ARTIFACT_KINDS = ['model', 'pruned-model', 'dataset', 'synthetic-dataset'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

const SUBKIND_OF: Record<ArtifactKind, ArtifactKind> = {
  model: 'model',
  'pruned-model': 'model',
  dataset: 'dataset',
  'synthetic-dataset': 'dataset',
};

/** True when an artifact of kind `produced` can be consumed where `required` is declared. */
export function artifactSatisfies(produced: ArtifactKind, required: ArtifactKind): boolean {
  return produced === required || SUBKIND_OF[produced] === required;
}

/** One progress report of a running stage. */
export interface StageProgress {
  step: number;
  total: number;
  /** Latest scalar values (losses, accuracy...) at this step. */
  metrics?: Record<string, number>;
}

/**
 * In-stage checkpoints of a long stage, so a worker that dies mid-stage costs at most `every` steps.
 * A plugin that supports them loads the state at its start (undefined: start from step 0) and saves
 * every `every` steps. The platform writes the metric points reported so far before storing the state.
 */
export interface StageCheckpoint {
  every: number;
  load(): Promise<Buffer | undefined>;
  /** Stores `state`, taken after `step` completed steps, replacing any earlier checkpoint of the stage. */
  save(state: Buffer, step: number): Promise<void>;
}

/** What the platform gives a plugin while it runs. */
export interface StageContext {
  /** Seed for every random choice the stage makes. */
  seed: number;
  /** Name of the tensor backend in use. */
  backend: string;
  /** Aborted when the run is cancelled; long loops check it between steps. */
  signal: AbortSignal;
  report(progress: StageProgress): void;
  log: Logger;
  /** Present when the run is durable; plugins that can resume mid-stage use it (kd through the trainer, deep-inversion and natural-inversion per batch, magnitude per gradual round). */
  checkpoint?: StageCheckpoint;
}

/** A PNG the stage wants shown to people (image grids). */
export interface StageImage {
  name: string;
  png: Buffer;
}

/** Scalar results of a stage, stored with the run. */
export type StageMetrics = Record<string, number>;

interface PluginBase<K extends PluginKind, C> {
  readonly name: string;
  readonly kind: K;
  readonly version: string;
  readonly description: string;
  /** Validates a stage config; also published through GraphQL (as JSON Schema) so clients can build forms. */
  readonly configSchema: z.ZodType<C>;
  readonly inputs: readonly ArtifactKind[];
  readonly output: ArtifactKind;
}

export interface SynthesisInput {
  teacher: ModelHandle;
  /** Real images of the task (the pipeline's dataset, test split) when the pipeline names one: for the Fréchet distance. */
  reference?: ImageSet;
}
export interface SynthesisOutput {
  /** Images with the labels they were made for and the teacher's logits on them. */
  dataset: ImageSet;
  metrics: StageMetrics;
  images?: StageImage[];
}
export interface SynthesisPlugin<C = unknown> extends PluginBase<'synthesis', C> {
  synthesize(input: SynthesisInput, config: C, ctx: StageContext): Promise<SynthesisOutput>;
}

export interface DistillationInput {
  teacher: ModelHandle;
  /** Training images: a real training split or a synthetic set. */
  data: ImageSet;
}
export interface DistillationOutput {
  student: ModelHandle;
  metrics: StageMetrics;
}
export interface DistillationPlugin<C = unknown> extends PluginBase<'distillation', C> {
  distill(input: DistillationInput, config: C, ctx: StageContext): Promise<DistillationOutput>;
}

export interface PruningInput {
  model: ModelHandle;
  /** Optional data for data-aware criteria. */
  data?: ImageSet;
}
export interface PruningOutput {
  /** The pruned model, with `masks` set when weights were masked rather than removed. */
  model: ModelHandle;
  metrics: StageMetrics;
  /** What was done, layer by layer, for the record. */
  transformLog: Array<Record<string, string | number>>;
}
export interface PruningPlugin<C = unknown> extends PluginBase<'pruning', C> {
  prune(input: PruningInput, config: C, ctx: StageContext): Promise<PruningOutput>;
}

export type CondensePlugin = SynthesisPlugin<any> | DistillationPlugin<any> | PruningPlugin<any>;

/** Thrown by a plugin when its input cannot be used; becomes a BAD_USER_INPUT error with the message. */
export class PluginInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginInputError';
  }
}

/** Thrown when a run is cancelled through its AbortSignal. */
export class StageCancelledError extends Error {
  constructor() {
    super('stage cancelled');
    this.name = 'StageCancelledError';
  }
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new StageCancelledError();
}
