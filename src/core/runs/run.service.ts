import { inject, injectable } from 'tsyringe';
import { DataSource, In } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity';
import { ArtifactStore } from '../artifacts/artifact-store';
import type { Caller } from '../auth/auth.service';
import { CONFIG, LOGGER } from '../app/tokens';
import { parseId, parseName } from '../app/validation';
import type { CondenseConfig } from '../config/config';
import type { LabelledDataset } from '../data/image-set';
import { InvalidInputError, NotFoundError } from '../errors';
import type { Logger } from '../logging/logger';
import { PluginInputError, StageCancelledError } from '../plugins/contracts';
import { PluginRegistry } from '../plugins/registry';
import { executePipeline, type StageOutcome } from '../pipelines/pipeline-executor';
import { stageListSchema, type StageSpec } from '../pipelines/pipeline-spec';
import { planPipeline, PipelineValidationError, type PlannedStage } from '../pipelines/pipeline-validation';
import { DatasetService } from '../projects/dataset.service';
import { ModelService } from '../projects/model.service';
import { PluginEnablementService } from '../projects/plugin-enablement.service';
import { ProjectService } from '../projects/project.service';
import { DatasetRecord } from '../records/dataset.entity';
import { ModelOrigin, RunStatus, StageStatus } from '../records/enums';
import { MetricPoint } from '../records/metric-point.entity';
import { ModelRecord } from '../records/model.entity';
import { Pipeline } from '../records/pipeline.entity';
import { RunStage } from '../records/run-stage.entity';
import { Run } from '../records/run.entity';
import { currentBackendInfo } from '../tensors/backend';
import { TrainingDivergedError } from '../training/trainer';
import { describeHardware } from './hardware';
import { encodeImageSet } from './image-set-codec';
import { MetricBuffer } from './metric-buffer';

/** Abort reason of runs stopped because their server is stopping (not cancelled by a person). */
const SERVER_STOPPING = 'server stopping';

export interface CreatePipelineInput {
  projectId: string;
  name: string;
  teacherModelId: string;
  datasetId?: string | null;
  stages: unknown;
}

export interface RunProgressEvent {
  runId: string;
  stageIndex: number;
  plugin: string;
  step: number;
  total: number;
  metrics: Record<string, number>;
}

/**
 * Pipelines and their runs. A run executes in this process (a later issue moves it to a durable
 * queue): its stages, metric points, artifacts and final metrics are written as it goes, and any
 * failure marks it failed with a code and a reason, leaving completed stages' records in place.
 */
@injectable()
export class RunService {
  private readonly active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly listeners = new Set<(event: RunProgressEvent) => void>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly projects: ProjectService,
    private readonly enablement: PluginEnablementService,
    private readonly registry: PluginRegistry,
    private readonly datasets: DatasetService,
    private readonly models: ModelService,
    private readonly artifacts: ArtifactStore,
    @inject(CONFIG) private readonly config: CondenseConfig,
    @inject(LOGGER) private readonly log: Logger,
  ) {}

  /** Validates and stores a pipeline: every plugin known and enabled, configs valid, inputs chained. */
  async createPipeline(caller: Caller, input: CreatePipelineInput): Promise<Pipeline> {
    const project = await this.projects.require(caller, input.projectId);
    const name = parseName('pipeline name', input.name);
    const teacher = await this.models.require(caller, input.teacherModelId);
    if (teacher.projectId !== project.id) throw new InvalidInputError(`teacher model ${teacher.id} belongs to another project`);
    let dataset: DatasetRecord | undefined;
    if (input.datasetId) {
      dataset = await this.datasets.require(caller, input.datasetId);
      if (dataset.projectId !== project.id) throw new InvalidInputError(`dataset ${dataset.id} belongs to another project`);
      checkDatasetFitsModel(dataset, teacher);
    }
    const stages = parseStages(input.stages);
    const planned = planPipeline(stages, this.registry, { enabledPlugins: await this.enablement.enabledNames(project.id), hasDataset: !!dataset });
    const repo = this.dataSource.getRepository(Pipeline);
    return repo.save(
      repo.create({
        projectId: project.id,
        name,
        teacherModelId: teacher.id,
        datasetId: dataset?.id ?? null,
        stages: planned.map((s) => ({ plugin: s.plugin.name, config: s.config })),
      }),
    );
  }

  async pipeline(caller: Caller, pipelineId: string): Promise<Pipeline> {
    const pipeline = await this.dataSource.getRepository(Pipeline).findOneBy({ id: parseId('pipelineId', pipelineId) });
    if (!pipeline) throw new NotFoundError(`no pipeline with id ${pipelineId}`);
    await this.projects.require(caller, pipeline.projectId);
    return pipeline;
  }

  async pipelines(caller: Caller, projectId: string): Promise<Pipeline[]> {
    const project = await this.projects.require(caller, projectId);
    return this.dataSource.getRepository(Pipeline).find({ where: { projectId: project.id }, order: { createdAt: 'ASC' } });
  }

  /**
   * Creates a run of a pipeline and starts it in the background; returns the queued run at once.
   * The pipeline is validated again (a plugin may have been disabled since it was stored).
   */
  async startRun(caller: Caller, pipelineId: string, seed = 0): Promise<Run> {
    if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new InvalidInputError(`seed must be an integer in [0, 2^32) (got ${seed})`);
    const pipeline = await this.pipeline(caller, pipelineId);
    const planned = planPipeline(pipeline.stages, this.registry, {
      enabledPlugins: await this.enablement.enabledNames(pipeline.projectId),
      hasDataset: !!pipeline.datasetId,
    });
    const run = await this.dataSource.transaction(async (manager) => {
      const saved = await manager.getRepository(Run).save(
        manager.getRepository(Run).create({
          pipelineId: pipeline.id,
          projectId: pipeline.projectId,
          status: RunStatus.queued,
          seed,
          createdById: caller.member.id,
          pluginVersions: Object.fromEntries(planned.map((s) => [s.plugin.name, s.plugin.version])),
          config: { name: pipeline.name, teacherModelId: pipeline.teacherModelId, datasetId: pipeline.datasetId, stages: pipeline.stages },
        }),
      );
      const stageRepo = manager.getRepository(RunStage);
      await stageRepo.save(
        planned.map((s) => stageRepo.create({ runId: saved.id, index: s.index, plugin: s.plugin.name, kind: s.plugin.kind, status: StageStatus.queued, config: s.config })),
      );
      return saved;
    });
    const controller = new AbortController();
    const done = this.execute(run, pipeline, planned, controller.signal)
      .catch((error: unknown) => this.log.error({ err: error, run: run.id }, 'could not record the end of a run'))
      .finally(() => this.active.delete(run.id));
    this.active.set(run.id, { controller, done });
    return run;
  }

  /** Cancels every run executing in this process and waits for them to record their end (server stop). */
  async shutdown(): Promise<void> {
    const running = [...this.active.values()];
    for (const { controller } of running) controller.abort(SERVER_STOPPING);
    await Promise.all(running.map((r) => r.done));
  }

  /** Resolves when the run has ended (any status); returns its final record. */
  async waitForRun(runId: string): Promise<Run> {
    await this.active.get(runId)?.done;
    return this.dataSource.getRepository(Run).findOneByOrFail({ id: runId });
  }

  /** Asks a running run to stop; it ends as `cancelled` at its next step. */
  async cancelRun(caller: Caller, runId: string): Promise<Run> {
    const run = await this.run(caller, runId);
    const active = this.active.get(run.id);
    if (!active) {
      if (run.status === RunStatus.queued) throw new InvalidInputError(`run ${run.id} is queued but not executing in this server`);
      return run;
    }
    active.controller.abort();
    await active.done;
    return this.dataSource.getRepository(Run).findOneByOrFail({ id: run.id });
  }

  async run(caller: Caller, runId: string): Promise<Run> {
    const run = await this.dataSource.getRepository(Run).findOneBy({ id: parseId('runId', runId) });
    if (!run) throw new NotFoundError(`no run with id ${runId}`);
    await this.projects.require(caller, run.projectId);
    return run;
  }

  async runs(caller: Caller, projectId: string): Promise<Run[]> {
    const project = await this.projects.require(caller, projectId);
    return this.dataSource.getRepository(Run).find({ where: { projectId: project.id }, order: { createdAt: 'DESC' }, take: 200 });
  }

  stages(runId: string): Promise<RunStage[]> {
    return this.dataSource.getRepository(RunStage).find({ where: { runId }, order: { index: 'ASC' } });
  }

  metricPoints(runId: string, names?: string[], stageIndex?: number): Promise<MetricPoint[]> {
    return this.dataSource.getRepository(MetricPoint).find({
      where: { runId, ...(names && names.length > 0 ? { name: In(names) } : {}), ...(stageIndex !== undefined ? { stageIndex } : {}) },
      order: { stageIndex: 'ASC', step: 'ASC', name: 'ASC' },
      take: 10_000,
    });
  }

  /** Subscribes to progress events of every run in this process; returns the unsubscribe function. */
  onProgress(listener: (event: RunProgressEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs left `running` or `queued` by a server that stopped cannot be resumed yet (the durable queue is
   * a later issue): mark them failed with the reason, so nobody waits on them.
   */
  async failInterruptedRuns(): Promise<number> {
    const repo = this.dataSource.getRepository(Run);
    const interrupted = await repo.find({ where: { status: In([RunStatus.running, RunStatus.queued]) } });
    const ids = interrupted.map((r) => r.id).filter((id) => !this.active.has(id));
    if (ids.length === 0) return 0;
    await repo.update({ id: In(ids) }, { status: RunStatus.failed, errorCode: 'INTERRUPTED', error: 'the server stopped while this run was in progress; start it again', finishedAt: new Date() });
    await this.dataSource.getRepository(RunStage).update({ runId: In(ids), status: In([StageStatus.running, StageStatus.queued]) }, { status: StageStatus.skipped });
    return ids.length;
  }

  private async execute(run: Run, pipeline: Pipeline, planned: PlannedStage[], signal: AbortSignal): Promise<void> {
    const stageRepo = this.dataSource.getRepository(RunStage);
    const metrics = new MetricBuffer(this.dataSource);
    const log = this.log.child({ run: run.id });
    const backend = currentBackendInfo();
    let currentStage: number | undefined;
    const loadedModels = new Set<{ dispose(): void }>();
    try {
      await this.patchRun(run.id, { status: RunStatus.running, startedAt: new Date(), backend: backend?.name ?? null, hardware: describeHardware() });
      const teacherRecord = await this.dataSource.getRepository(ModelRecord).findOneByOrFail({ id: pipeline.teacherModelId });
      const teacher = await this.models.loadModel(teacherRecord);
      loadedModels.add(teacher.model);
      const storedModels = new Map<object, string>([[teacher.model, teacherRecord.id]]);
      let dataset: LabelledDataset | undefined;
      let dataHash: string | null = null;
      if (pipeline.datasetId) {
        const record = await this.dataSource.getRepository(DatasetRecord).findOneByOrFail({ id: pipeline.datasetId });
        dataset = await this.datasets.loadRecord(record);
        dataHash = record.contentHash;
      }
      await this.patchRun(run.id, { teacherHash: teacherRecord.contentHash, dataHash });

      const result = await executePipeline(planned, { teacher, dataset }, {
        signal,
        log,
        backend: backend?.name ?? 'unknown',
        seed: run.seed,
        onStageStart: async (stage) => {
          currentStage = stage.index;
          await stageRepo.update({ runId: run.id, index: stage.index }, { status: StageStatus.running, startedAt: new Date() });
        },
        onProgress: (stage, progress) => {
          metrics.add(run.id, stage.index, progress.step, progress.metrics ?? {});
          const event = { runId: run.id, stageIndex: stage.index, plugin: stage.plugin.name, step: progress.step, total: progress.total, metrics: progress.metrics ?? {} };
          for (const listener of this.listeners) listener(event);
        },
        onStageFinished: async (outcome) => {
          await metrics.flush();
          if (outcome.model) loadedModels.add(outcome.model.model);
          const artifactId = await this.storeStageOutputs(run, pipeline, teacherRecord, outcome, storedModels);
          await this.patchStage(
            { runId: run.id, index: outcome.index },
            { status: StageStatus.succeeded, metrics: outcome.metrics, wallMs: outcome.wallMs, finishedAt: new Date(), outputArtifactId: artifactId },
          );
          currentStage = undefined;
        },
      });
      const finalModelId = storedModels.get(result.finalModel.model) ?? null;
      // An array: jsonb does not keep the key order of objects.
      const stageWallMs = result.stages.map((s) => ({ stage: s.index, plugin: s.plugin, wallMs: s.wallMs }));
      await this.patchRun(run.id, { status: RunStatus.succeeded, finishedAt: new Date(), finalMetrics: { ...result.finalMetrics, stageWallMs }, finalModelId });
      log.info({ top1: result.finalMetrics.top1 }, 'run succeeded');
    } catch (error) {
      await metrics.flush().catch(() => undefined);
      const { status, code, message } =
        error instanceof StageCancelledError && signal.reason === SERVER_STOPPING
          ? { status: RunStatus.failed, code: 'INTERRUPTED', message: 'the server stopped during this run; start it again' }
          : describeFailure(error);
      if (status === RunStatus.failed) log.warn({ err: error }, 'run failed');
      await this.patchRun(run.id, { status, errorCode: code, error: message, finishedAt: new Date() });
      if (currentStage !== undefined) {
        await stageRepo.update({ runId: run.id, index: currentStage }, { status, finishedAt: new Date() });
      }
      await stageRepo.update({ runId: run.id, status: StageStatus.queued }, { status: StageStatus.skipped });
    } finally {
      for (const model of loadedModels) model.dispose();
    }
  }

  private async patchRun(id: string, patch: Partial<Run>): Promise<void> {
    await this.dataSource.getRepository(Run).update({ id }, patch as QueryDeepPartialEntity<Run>);
  }

  private async patchStage(where: { runId: string; index: number }, patch: Partial<RunStage>): Promise<void> {
    await this.dataSource.getRepository(RunStage).update(where, patch as QueryDeepPartialEntity<RunStage>);
  }

  /** Stores what a stage made: its model (as a model record), synthetic set, images and transform log. */
  private async storeStageOutputs(
    run: Run,
    pipeline: Pipeline,
    teacher: ModelRecord,
    outcome: StageOutcome,
    storedModels: Map<object, string>,
  ): Promise<string | null> {
    const options = { runId: run.id };
    let primary: string | null = null;
    if (outcome.model) {
      const record = await this.models.recordModel({
        projectId: run.projectId,
        name: `${pipeline.name} · run ${run.id.slice(0, 8)} · stage ${outcome.index + 1} ${outcome.plugin}`,
        handle: outcome.model,
        origin: ModelOrigin.pipeline,
        classNames: teacher.numClasses === outcome.model.model.outputs[0].shape[1] ? teacher.classNames : undefined,
        runId: run.id,
        datasetId: pipeline.datasetId,
        metrics: outcome.metrics,
      });
      storedModels.set(outcome.model.model, record.id);
      primary = record.artifactId;
    }
    if (outcome.dataset) {
      const artifact = await this.artifacts.putBuffer('synthetic-dataset', encodeImageSet(outcome.dataset), 'application/x-condense-image-set', options);
      primary = artifact.id;
    }
    for (const image of outcome.images ?? []) {
      await this.artifacts.putBuffer('image', image.png, 'image/png', options);
    }
    if (outcome.transformLog) {
      await this.artifacts.putBuffer('transform-log', Buffer.from(JSON.stringify(outcome.transformLog, null, 1)), 'application/json', options);
    }
    return primary;
  }
}

function parseStages(value: unknown): StageSpec[] {
  const parsed = stageListSchema.safeParse(value);
  if (!parsed.success) {
    throw new InvalidInputError(`stages are invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'stages'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

function checkDatasetFitsModel(dataset: DatasetRecord, model: ModelRecord): void {
  const same = dataset.inputShape.length === model.inputShape.length && dataset.inputShape.every((d, i) => d === model.inputShape[i]);
  if (!same) {
    throw new InvalidInputError(
      `dataset "${dataset.name}" has images of shape [${dataset.inputShape}] but model "${model.name}" takes [${model.inputShape}]`,
    );
  }
  if (dataset.numClasses !== model.numClasses) {
    throw new InvalidInputError(`dataset "${dataset.name}" has ${dataset.numClasses} classes but model "${model.name}" outputs ${model.numClasses}`);
  }
}

function describeFailure(error: unknown): { status: RunStatus; code: string; message: string } {
  if (error instanceof StageCancelledError) return { status: RunStatus.cancelled, code: 'CANCELLED', message: 'cancelled by request' };
  if (error instanceof TrainingDivergedError) return { status: RunStatus.failed, code: 'TRAINING_DIVERGED', message: error.message };
  if (error instanceof PluginInputError || error instanceof PipelineValidationError || error instanceof InvalidInputError) {
    return { status: RunStatus.failed, code: 'BAD_USER_INPUT', message: error.message };
  }
  const message = error instanceof Error ? error.message : String(error);
  if (/out of memory|OOM|Cannot allocate|Array buffer allocation failed/i.test(message)) {
    return { status: RunStatus.failed, code: 'OUT_OF_MEMORY', message: `${message}; try a smaller batchSize` };
  }
  return { status: RunStatus.failed, code: 'STAGE_FAILED', message };
}
