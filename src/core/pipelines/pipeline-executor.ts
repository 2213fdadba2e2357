import type { ImageSet, LabelledDataset } from '../data/image-set';
import type { Logger } from '../logging/logger';
import type { ModelHandle } from '../models/model-spec';
import type { StageCheckpoint, StageImage, StageMetrics, StageProgress } from '../plugins/contracts';
import { throwIfAborted } from '../plugins/contracts';
import type { PlannedStage } from './pipeline-validation';
import { measureFinalModel, type FinalModelMetrics } from './final-metrics';

/** What one finished stage produced. */
export interface StageOutcome {
  index: number;
  plugin: string;
  kind: PlannedStage['plugin']['kind'];
  metrics: StageMetrics;
  wallMs: number;
  model?: ModelHandle;
  dataset?: ImageSet;
  images?: StageImage[];
  transformLog?: Array<Record<string, string | number>>;
}

export interface PipelineInputs {
  teacher: ModelHandle;
  /** Real data: its train split feeds stages that need a dataset when no synthesis stage ran; its test split evaluates. */
  dataset?: LabelledDataset;
}

export interface PipelineHooks {
  signal: AbortSignal;
  log: Logger;
  backend: string;
  seed: number;
  onStageStart?(stage: PlannedStage): void | Promise<void>;
  onProgress?(stage: PlannedStage, progress: StageProgress): void;
  /** Called when a stage has finished, before the next starts (persist artifacts here). */
  onStageFinished?(outcome: StageOutcome): void | Promise<void>;
  /** Stages completed by an earlier attempt of the run, given back here: they are not run again. */
  completed?: StageOutcome[];
  /** The in-stage checkpoint slot of a stage (durable runs); plugins that support it resume from it. */
  checkpoint?(stage: PlannedStage): StageCheckpoint | undefined;
}

export interface PipelineResult {
  stages: StageOutcome[];
  finalModel: ModelHandle;
  finalMetrics: FinalModelMetrics & { teacherTop1?: number; totalWallMs: number };
}

/** Seed of stage i, so that each stage's randomness is fixed by the run seed and its position. */
export function stageSeed(runSeed: number, index: number): number {
  return (runSeed * 1009 + index * 7919 + 17) >>> 0;
}

/**
 * Runs planned stages in order, in this process. Each stage gets the latest model (the teacher until a
 * distillation or pruning stage replaces it) and the latest dataset (the real training split until a
 * synthesis stage replaces it). Every model-producing stage is evaluated on the real test split.
 */
export async function executePipeline(stages: PlannedStage[], inputs: PipelineInputs, hooks: PipelineHooks): Promise<PipelineResult> {
  const outcomes: StageOutcome[] = [];
  let model: ModelHandle = inputs.teacher;
  let data: ImageSet | undefined = inputs.dataset?.train;
  const started = Date.now();

  for (const stage of stages) {
    throwIfAborted(hooks.signal);
    const previous = hooks.completed?.find((o) => o.index === stage.index);
    let outcome: StageOutcome;
    if (previous) {
      outcome = previous;
    } else {
      await hooks.onStageStart?.(stage);
      outcome = await runStage(stage, model, data, inputs, hooks);
      await hooks.onStageFinished?.(outcome);
    }
    outcomes.push(outcome);
    if (outcome.model) model = outcome.model;
    if (outcome.dataset) data = outcome.dataset;
  }

  const finalMetrics = await measureFinalModel(model, inputs.dataset?.test);
  const teacherTop1 = inputs.dataset ? (await measureFinalModel(inputs.teacher, inputs.dataset.test, { skipCost: true })).top1 : undefined;
  return { stages: outcomes, finalModel: model, finalMetrics: { ...finalMetrics, teacherTop1, totalWallMs: Date.now() - started } };
}

async function runStage(
  stage: PlannedStage,
  model: ModelHandle,
  data: ImageSet | undefined,
  inputs: PipelineInputs,
  hooks: PipelineHooks,
): Promise<StageOutcome> {
  const ctx = {
    seed: stageSeed(hooks.seed, stage.index),
    backend: hooks.backend,
    signal: hooks.signal,
    log: hooks.log.child({ stage: stage.index, plugin: stage.plugin.name }),
    report: (progress: StageProgress) => hooks.onProgress?.(stage, progress),
    checkpoint: hooks.checkpoint?.(stage),
  };
  const started = Date.now();
  const base = { index: stage.index, plugin: stage.plugin.name, kind: stage.plugin.kind };
  const plugin = stage.plugin;
  switch (plugin.kind) {
    case 'synthesis': {
      const out = await plugin.synthesize({ teacher: inputs.teacher, reference: inputs.dataset?.test }, stage.config, ctx);
      return { ...base, metrics: out.metrics, dataset: out.dataset, images: out.images, wallMs: Date.now() - started };
    }
    case 'distillation': {
      if (!data) throw new Error(`stage ${stage.index + 1} (${plugin.name}) has no training data`);
      const out = await plugin.distill({ teacher: inputs.teacher, data }, stage.config, ctx);
      const evaluation = await evaluateOnTest(out.student, inputs);
      return { ...base, metrics: { ...out.metrics, ...evaluation }, model: out.student, wallMs: Date.now() - started };
    }
    case 'pruning': {
      const out = await plugin.prune({ model, data }, stage.config, ctx);
      const evaluation = await evaluateOnTest(out.model, inputs);
      return {
        ...base,
        metrics: { ...out.metrics, ...evaluation },
        model: out.model,
        transformLog: out.transformLog,
        wallMs: Date.now() - started,
      };
    }
  }
}

async function evaluateOnTest(model: ModelHandle, inputs: PipelineInputs): Promise<StageMetrics> {
  if (!inputs.dataset) return {};
  const m = await measureFinalModel(model, inputs.dataset.test, { skipCost: true });
  return { top1: m.top1!, top5: m.top5! };
}
