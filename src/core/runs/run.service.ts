import { inject, injectable } from 'tsyringe';
import { DataSource, In } from 'typeorm';
import type { Caller } from '../auth/auth.service';
import { CONFIG, LOGGER } from '../app/tokens';
import type { CondenseConfig } from '../config/config';
import { parseId, parseName } from '../app/validation';
import { InvalidInputError, NotFoundError } from '../errors';
import type { Logger } from '../logging/logger';
import { stageListSchema, type StageSpec } from '../pipelines/pipeline-spec';
import { planPipeline } from '../pipelines/pipeline-validation';
import { PluginRegistry } from '../plugins/registry';
import { DatasetService } from '../projects/dataset.service';
import { ModelService } from '../projects/model.service';
import { PluginEnablementService } from '../projects/plugin-enablement.service';
import { ProjectService } from '../projects/project.service';
import { RunQueue } from '../queue/run-queue';
import { DatasetRecord } from '../records/dataset.entity';
import { RunStatus, StageStatus } from '../records/enums';
import { MetricPoint } from '../records/metric-point.entity';
import { ModelRecord } from '../records/model.entity';
import { Pipeline } from '../records/pipeline.entity';
import { RunStage } from '../records/run-stage.entity';
import { Run } from '../records/run.entity';
import { cancelAbandonedRuns, CANCEL_ABANDONED_SECONDS } from './abandoned-runs';
import { AbortReason, DEFAULT_CHECKPOINT_EVERY, RunExecutor } from './run-executor';
import { ProgressHub, progressFromJson, type RunProgress, type RunProgressJson } from './run-progress';
import { pipelineSignature, stagesOfRun } from '../history/signature';

/** How long `cancelRun` waits for the executing worker to record the cancellation. */
const CANCEL_WAIT_MS = 20_000;
const POLL_MS = 200;
const TERMINAL: RunStatus[] = [RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled];

export interface CreatePipelineInput {
  projectId: string;
  name: string;
  teacherModelId: string;
  datasetId?: string | null;
  stages: unknown;
}

export interface StartRunOptions {
  /** Steps between in-stage checkpoints of stages that support them (default 200). */
  checkpointEvery?: number;
}

/**
 * Pipelines and their runs, API side. Starting a run writes the run row and its pg-boss job in one
 * transaction; a worker (this process's or a `condense worker`, see RunWorker and RunExecutor) claims
 * and executes it. Cancelling marks the row; the executing worker sees the mark at its next heartbeat.
 */
@injectable()
export class RunService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly projects: ProjectService,
    private readonly enablement: PluginEnablementService,
    private readonly registry: PluginRegistry,
    private readonly datasets: DatasetService,
    private readonly models: ModelService,
    private readonly queue: RunQueue,
    private readonly executor: RunExecutor,
    private readonly hub: ProgressHub,
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
   * Creates a run of a pipeline and queues it; returns the queued run at once. The pipeline is
   * validated again (a plugin may have been disabled since it was stored).
   */
  async startRun(caller: Caller, pipelineId: string, seed = 0, options: StartRunOptions = {}): Promise<Run> {
    if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new InvalidInputError(`seed must be an integer in [0, 2^32) (got ${seed})`);
    const checkpointEvery = options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
    if (!Number.isInteger(checkpointEvery) || checkpointEvery < 1 || checkpointEvery > 1_000_000) {
      throw new InvalidInputError(`checkpointEvery must be an integer in [1, 1000000] steps (got ${checkpointEvery})`);
    }
    const pipeline = await this.pipeline(caller, pipelineId);
    const planned = planPipeline(pipeline.stages, this.registry, {
      enabledPlugins: await this.enablement.enabledNames(pipeline.projectId),
      hasDataset: !!pipeline.datasetId,
    });
    const pluginVersions = Object.fromEntries(planned.map((s) => [s.plugin.name, s.plugin.version]));
    const config = { name: pipeline.name, teacherModelId: pipeline.teacherModelId, datasetId: pipeline.datasetId, stages: pipeline.stages, checkpointEvery };
    // The signature groups comparable runs; written now so history queries never compute it on the hot path.
    const signature = pipelineSignature(stagesOfRun(config, pluginVersions, (plugin) => (this.registry.has(plugin) ? this.registry.get(plugin).kind : undefined)));
    return this.dataSource.transaction(async (manager) => {
      const saved = await manager.getRepository(Run).save(
        manager.getRepository(Run).create({
          pipelineId: pipeline.id,
          projectId: pipeline.projectId,
          status: RunStatus.queued,
          seed,
          createdById: caller.member.id,
          pluginVersions,
          config,
          signature: signature.hash,
          signatureText: signature.text,
        }),
      );
      const stageRepo = manager.getRepository(RunStage);
      await stageRepo.save(
        planned.map((s) => stageRepo.create({ runId: saved.id, index: s.index, plugin: s.plugin.name, kind: s.plugin.kind, status: StageStatus.queued, config: s.config })),
      );
      await this.queue.enqueue(saved.id, manager);
      return saved;
    });
  }

  /** Resolves when the run has ended (any status), polling its row (after `beforePoll`, when given); returns its final record. */
  async waitForRun(runId: string, timeoutMs = Number.POSITIVE_INFINITY, beforePoll?: () => Promise<unknown>): Promise<Run> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await beforePoll?.();
      const run = await this.dataSource.getRepository(Run).findOneByOrFail({ id: runId });
      if (TERMINAL.includes(run.status) || Date.now() >= deadline) return run;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /**
   * Asks a run to stop. A queued run is cancelled at once; a running one is marked, and its worker (in
   * any process) aborts at its next heartbeat and records it cancelled, keeping completed stages. Waits
   * a few seconds for that and returns the run as it then is. When the worker died (no heartbeat for
   * CANCEL_ABANDONED_SECONDS), the run is recorded cancelled here instead.
   */
  async cancelRun(caller: Caller, runId: string): Promise<Run> {
    const run = await this.run(caller, runId);
    if (TERMINAL.includes(run.status)) return run;
    const [queued] = (await this.dataSource.query(
      `UPDATE runs SET status = 'cancelled', error_code = 'CANCELLED', error = 'cancelled by request', cancel_requested_at = now(), finished_at = now()
       WHERE id = $1 AND status = 'queued' RETURNING id`,
      [run.id],
    )) as [unknown[], number];
    if (queued.length > 0) {
      await this.dataSource.getRepository(RunStage).update({ runId: run.id, status: In([StageStatus.queued, StageStatus.running]) }, { status: StageStatus.skipped });
      return this.dataSource.getRepository(Run).findOneByOrFail({ id: run.id });
    }
    await this.dataSource.query(`UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, now()) WHERE id = $1`, [run.id]);
    await this.executor.abortLocal(run.id, AbortReason.cancelled);
    // A worker that died cannot record the cancel: once its heartbeat is that old, record it here.
    const abandonedAfter = Math.min(CANCEL_ABANDONED_SECONDS, this.config.runStaleSeconds ?? CANCEL_ABANDONED_SECONDS);
    return this.waitForRun(run.id, CANCEL_WAIT_MS, () => cancelAbandonedRuns(this.dataSource, abandonedAfter, run.id));
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

  /** The run's latest progress summary (null before a worker has reported). */
  progress(run: Run): RunProgress | null {
    return run.progress ? progressFromJson(run.progress as unknown as RunProgressJson) : null;
  }

  /**
   * Calls `listener` with the progress events of one run (or of every run), wherever it executes;
   * returns the unsubscribe function. Callers check access to the run first.
   */
  onProgress(listener: (progress: RunProgress) => void, runId?: string): () => void {
    return this.hub.subscribe(listener, runId);
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
