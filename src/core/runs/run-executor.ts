import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { inject, injectable } from 'tsyringe';
import { DataSource, In, type EntityManager } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity';
import { ArtifactStore } from '../artifacts/artifact-store';
import { CONFIG, LOGGER } from '../app/tokens';
import type { CondenseConfig } from '../config/config';
import type { LabelledDataset } from '../data/image-set';
import { InvalidInputError } from '../errors';
import type { Logger } from '../logging/logger';
import { PluginInputError, StageCancelledError, type StageCheckpoint } from '../plugins/contracts';
import { PluginRegistry } from '../plugins/registry';
import { executePipeline, type StageOutcome } from '../pipelines/pipeline-executor';
import type { StageSpec } from '../pipelines/pipeline-spec';
import { planPipeline, PipelineValidationError, type PlannedStage } from '../pipelines/pipeline-validation';
import { DatasetService } from '../projects/dataset.service';
import { ModelService } from '../projects/model.service';
import { Artifact } from '../records/artifact.entity';
import { DatasetRecord } from '../records/dataset.entity';
import { ModelOrigin, RunStatus, StageStatus } from '../records/enums';
import { MetricPoint } from '../records/metric-point.entity';
import { ModelRecord } from '../records/model.entity';
import { RunCheckpoint } from '../records/run-checkpoint.entity';
import { RunStage } from '../records/run-stage.entity';
import { Run } from '../records/run.entity';
import { currentBackendInfo } from '../tensors/backend';
import { TensorDeviceError } from '../tensors/backend';
import { TrainingDivergedError } from '../training/trainer';
import { describeHardware } from './hardware';
import { decodeImageSet, encodeImageSet } from './image-set-codec';
import { MetricBuffer } from './metric-buffer';
import { compactProgress, PROGRESS_CHANNEL, type RunProgressJson } from './run-progress';

/** How often an executing run's worker proves it is alive and looks for a cancel request. */
export const HEARTBEAT_MS = 1000;
/** Default steps between in-stage checkpoints (a stage config's `checkpointEvery` is not a plugin option; see the run config). */
export const DEFAULT_CHECKPOINT_EVERY = 200;
/** Progress is published (runs.progress + NOTIFY) at most this often per run. */
const PROGRESS_INTERVAL_MS = 500;

/** Why an executing run was aborted. */
export const AbortReason = {
  cancelled: 'cancelled',
  /** This process is stopping: the run goes back to the queue and resumes elsewhere or later. */
  stopping: 'stopping',
  /** Another worker took the run over (this one's heartbeat went stale): stop without writing anything. */
  lost: 'lost',
} as const;
export type AbortReason = (typeof AbortReason)[keyof typeof AbortReason];

const TERMINAL: RunStatus[] = [RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled];

export interface ExecutorEvents {
  /** Called when a run ended here as queued again because this process stopped. */
  onRequeued?(runId: string): Promise<void>;
}

/**
 * The worker side of runs: claims a queued run, executes its stages with the pipeline executor and
 * records everything as it goes. A run left by a dead worker resumes here: stages that succeeded are
 * given back from their stored artifacts, the interrupted stage continues from its last in-stage
 * checkpoint (plugins that support it; kd does), and its metric points after that checkpoint are
 * dropped so the resumed attempt writes them once.
 */
@injectable()
export class RunExecutor {
  /** Identifies this process in runs.worker_id. */
  readonly workerId = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  events: ExecutorEvents = {};

  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: PluginRegistry,
    private readonly datasets: DatasetService,
    private readonly models: ModelService,
    private readonly artifacts: ArtifactStore,
    @inject(CONFIG) private readonly config: CondenseConfig,
    @inject(LOGGER) private readonly log: Logger,
  ) {}

  get activeRuns(): number {
    return this.active.size;
  }

  /** Claims the run if it is queued and executes it to its end; returns at once if someone else has it. */
  async executeQueued(runId: string): Promise<void> {
    const [rows] = (await this.dataSource.query(
      `UPDATE runs SET status = 'running', worker_id = $2, heartbeat_at = now(), attempts = attempts + 1, started_at = COALESCE(started_at, now())
       WHERE id = $1 AND status = 'queued' RETURNING id`,
      [runId, this.workerId],
    )) as [unknown[], number];
    if (rows.length === 0) return;
    const controller = new AbortController();
    const done = this.execute(runId, controller).catch((error: unknown) => this.log.error({ err: error, run: runId }, 'could not record the end of a run'));
    this.active.set(runId, { controller, done });
    try {
      await done;
    } finally {
      this.active.delete(runId);
    }
  }

  /** Aborts a run executing in this process (a cancel asked here is seen at once, not at the next heartbeat). */
  abortLocal(runId: string, reason: AbortReason): Promise<void> | undefined {
    const active = this.active.get(runId);
    if (!active) return undefined;
    active.controller.abort(reason);
    return active.done;
  }

  /** Aborts every run executing here and waits until each is back in the queue (process stop). */
  async stopAll(): Promise<void> {
    const running = [...this.active.values()];
    for (const { controller } of running) controller.abort(AbortReason.stopping);
    await Promise.all(running.map((r) => r.done));
  }

  private async execute(runId: string, controller: AbortController): Promise<void> {
    const signal = controller.signal;
    const run = await this.dataSource.getRepository(Run).findOneByOrFail({ id: runId });
    const log = this.log.child({ run: run.id, attempt: run.attempts });
    const metrics = new MetricBuffer(this.dataSource);
    const progress = new ProgressPublisher(this.dataSource, run.id);
    const heartbeat = setInterval(() => void this.beat(run.id, controller, log), HEARTBEAT_MS);
    const loadedModels = new Set<{ dispose(): void }>();
    let currentStage: number | undefined;
    const stageRepo = this.dataSource.getRepository(RunStage);
    try {
      const backend = currentBackendInfo();
      await this.patchRun(run.id, { backend: backend?.name ?? null, hardware: describeHardware() });
      if (run.cancelRequestedAt) throw new StageCancelledError();
      const config = run.config as { teacherModelId: string; datasetId: string | null; name: string; stages: StageSpec[]; checkpointEvery?: number };
      const planned = planPipeline(config.stages, this.registry, { hasDataset: !!config.datasetId });
      const teacherRecord = await this.dataSource.getRepository(ModelRecord).findOneByOrFail({ id: config.teacherModelId });
      const teacher = await this.models.loadModel(teacherRecord);
      loadedModels.add(teacher.model);
      const storedModels = new Map<object, string>([[teacher.model, teacherRecord.id]]);
      let dataset: LabelledDataset | undefined;
      let dataHash: string | null = null;
      if (config.datasetId) {
        const record = await this.dataSource.getRepository(DatasetRecord).findOneByOrFail({ id: config.datasetId });
        dataset = await this.datasets.loadRecord(record);
        dataHash = record.contentHash;
      }
      await this.patchRun(run.id, { teacherHash: teacherRecord.contentHash, dataHash });

      const completed = await this.prepareResume(run, planned, storedModels, loadedModels, log);
      const checkpointEvery = config.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
      const pipeline = { name: config.name, datasetId: config.datasetId };
      const result = await executePipeline(planned, { teacher, dataset }, {
        signal,
        log,
        backend: backend?.name ?? 'unknown',
        seed: run.seed,
        completed,
        checkpoint: (stage) => this.checkpointOf(run.id, stage.index, checkpointEvery, metrics),
        onStageStart: async (stage) => {
          currentStage = stage.index;
          await this.dataSource.query(
            `UPDATE run_stages SET status = 'running', started_at = COALESCE(started_at, now()), finished_at = NULL WHERE run_id = $1 AND index = $2`,
            [run.id, stage.index],
          );
          progress.stageStarted(stage.index, stage.plugin.name);
        },
        onProgress: (stage, p) => {
          metrics.add(run.id, stage.index, p.step, p.metrics ?? {});
          progress.report(p.step, p.total, p.metrics ?? {});
        },
        onStageFinished: async (outcome) => {
          await metrics.flush();
          if (outcome.model) loadedModels.add(outcome.model.model);
          await this.dataSource.transaction(async (manager) => {
            const artifactId = await this.storeStageOutputs(manager, run, pipeline, teacherRecord, outcome, storedModels);
            await manager.getRepository(RunStage).update(
              { runId: run.id, index: outcome.index },
              { status: StageStatus.succeeded, metrics: outcome.metrics, wallMs: outcome.wallMs, finishedAt: new Date(), outputArtifactId: artifactId },
            );
            await manager.getRepository(RunCheckpoint).delete({ runId: run.id, stageIndex: outcome.index });
          });
          currentStage = undefined;
        },
      });
      const finalModelId = storedModels.get(result.finalModel.model) ?? null;
      // An array: jsonb does not keep the key order of objects.
      const stageWallMs = result.stages.map((s) => ({ stage: s.index, plugin: s.plugin, wallMs: s.wallMs }));
      if (!(await this.finish(run.id, { status: RunStatus.succeeded, finishedAt: new Date(), finalMetrics: { ...result.finalMetrics, stageWallMs }, finalModelId }))) return;
      await progress.publish(RunStatus.succeeded);
      log.info({ top1: result.finalMetrics.top1 }, 'run succeeded');
    } catch (error) {
      await metrics.flush().catch(() => undefined);
      const reason = signal.reason as AbortReason | undefined;
      if (error instanceof StageCancelledError && reason === AbortReason.lost) {
        log.warn('another worker took this run over; stopped without recording');
        return;
      }
      if (error instanceof StageCancelledError && reason === AbortReason.stopping) {
        await this.requeue(run.id, currentStage);
        await progress.publish(RunStatus.queued);
        log.info({ stage: currentStage }, 'run returned to the queue (process stopping)');
        await this.events.onRequeued?.(run.id);
        return;
      }
      const { status, code, message } = describeFailure(error);
      if (status === RunStatus.failed) log.warn({ err: error }, 'run failed');
      if (!(await this.finish(run.id, { status, errorCode: code, error: message, finishedAt: new Date() }))) return;
      if (currentStage !== undefined) await stageRepo.update({ runId: run.id, index: currentStage }, { status, finishedAt: new Date() });
      await stageRepo.update({ runId: run.id, status: In([StageStatus.queued, StageStatus.running]) }, { status: StageStatus.skipped });
      await progress.publish(status);
    } finally {
      clearInterval(heartbeat);
      progress.close();
      for (const model of loadedModels) model.dispose();
    }
  }

  /** Writes the run's end if this worker still holds it; false when another worker took it over. */
  private async finish(runId: string, patch: Partial<Run>): Promise<boolean> {
    const result = await this.dataSource
      .createQueryBuilder()
      .update(Run)
      .set({ ...patch, workerId: null } as QueryDeepPartialEntity<Run>)
      .where('id = :id AND worker_id = :worker', { id: runId, worker: this.workerId })
      .execute();
    if (result.affected === 0) return false;
    if (TERMINAL.includes(patch.status!)) await this.dataSource.getRepository(RunCheckpoint).delete({ runId });
    return true;
  }

  /** Puts a run this process was executing back in the queue, keeping its checkpoints. */
  private async requeue(runId: string, stage: number | undefined): Promise<void> {
    await this.dataSource.query(`UPDATE runs SET status = 'queued', worker_id = NULL, heartbeat_at = now() WHERE id = $1 AND worker_id = $2`, [runId, this.workerId]);
    if (stage !== undefined) await this.dataSource.getRepository(RunStage).update({ runId, index: stage }, { status: StageStatus.queued });
  }

  /** Refreshes the heartbeat; aborts the run when it was cancelled or taken over. */
  private async beat(runId: string, controller: AbortController, log: Logger): Promise<void> {
    if (controller.signal.aborted) return;
    try {
      const rows = (await this.dataSource.query(`UPDATE runs SET heartbeat_at = now() WHERE id = $1 AND worker_id = $2 RETURNING cancel_requested_at`, [
        runId,
        this.workerId,
      ])) as [Array<{ cancel_requested_at: Date | null }>, number];
      const row = rows[0][0];
      if (!row) controller.abort(AbortReason.lost);
      else if (row.cancel_requested_at) controller.abort(AbortReason.cancelled);
    } catch (error) {
      log.warn({ err: error }, 'heartbeat failed');
    }
  }

  /**
   * Stages that succeeded in an earlier attempt, rebuilt from their stored outputs; the others are set
   * back to queued, and metric points an interrupted stage wrote after its checkpoint are dropped.
   */
  private async prepareResume(
    run: Run,
    planned: PlannedStage[],
    storedModels: Map<object, string>,
    loadedModels: Set<{ dispose(): void }>,
    log: Logger,
  ): Promise<StageOutcome[]> {
    const stages = await this.dataSource.getRepository(RunStage).find({ where: { runId: run.id }, order: { index: 'ASC' } });
    const completed: StageOutcome[] = [];
    for (const stage of stages) {
      const plannedStage = planned[stage.index];
      if (stage.status === StageStatus.succeeded) {
        const base = { index: stage.index, plugin: stage.plugin, kind: plannedStage.plugin.kind, metrics: (stage.metrics ?? {}) as Record<string, number>, wallMs: stage.wallMs ?? 0 };
        const artifact = stage.outputArtifactId ? await this.dataSource.getRepository(Artifact).findOneBy({ id: stage.outputArtifactId }) : null;
        if (!artifact) throw new Error(`stage ${stage.index + 1} of run ${run.id} succeeded but its output artifact is missing`);
        if (plannedStage.plugin.kind === 'synthesis') {
          completed.push({ ...base, dataset: decodeImageSet(fs.readFileSync(this.artifacts.pathOf(artifact))) });
        } else {
          const record = await this.dataSource.getRepository(ModelRecord).findOneOrFail({ where: { artifactId: artifact.id, runId: run.id }, order: { createdAt: 'DESC' } });
          const model = await this.models.loadModel(record);
          loadedModels.add(model.model);
          storedModels.set(model.model, record.id);
          completed.push({ ...base, model });
        }
        continue;
      }
      const checkpoint = await this.dataSource.getRepository(RunCheckpoint).findOne({ where: { runId: run.id, stageIndex: stage.index }, select: { step: true } });
      await this.dataSource
        .createQueryBuilder()
        .delete()
        .from(MetricPoint)
        .where('run_id = :run AND stage_index = :stage AND step > :step', { run: run.id, stage: stage.index, step: checkpoint?.step ?? 0 })
        .execute();
      if (stage.status !== StageStatus.queued) await this.dataSource.getRepository(RunStage).update({ id: stage.id }, { status: StageStatus.queued });
    }
    if (run.attempts > 1) log.info({ completedStages: completed.map((c) => c.index) }, 'resuming run');
    return completed;
  }

  private checkpointOf(runId: string, stageIndex: number, every: number, metrics: MetricBuffer): StageCheckpoint {
    return {
      every,
      load: async () => {
        const saved = await this.dataSource.getRepository(RunCheckpoint).findOneBy({ runId, stageIndex });
        if (!saved) return undefined;
        await this.dataSource.getRepository(RunStage).update({ runId, index: stageIndex }, { resumedFromStep: saved.step });
        return saved.state;
      },
      save: async (state, step) => {
        // Points up to this step are written before the state that claims them.
        await metrics.flush();
        await this.dataSource.query(
          `INSERT INTO run_checkpoints (run_id, stage_index, step, state, updated_at)
           SELECT $1, $2, $3, $4, now() WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND worker_id = $5)
           ON CONFLICT (run_id, stage_index) DO UPDATE SET step = EXCLUDED.step, state = EXCLUDED.state, updated_at = now()`,
          [runId, stageIndex, step, state, this.workerId],
        );
      },
    };
  }

  private async patchRun(id: string, patch: Partial<Run>): Promise<void> {
    await this.dataSource.getRepository(Run).update({ id }, patch as QueryDeepPartialEntity<Run>);
  }

  /** Stores what a stage made: its model (as a model record), synthetic set, images and transform log. */
  private async storeStageOutputs(
    manager: EntityManager,
    run: Run,
    pipeline: { name: string; datasetId: string | null },
    teacher: ModelRecord,
    outcome: StageOutcome,
    storedModels: Map<object, string>,
  ): Promise<string | null> {
    const options = { runId: run.id, manager };
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
        manager,
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

/**
 * The latest progress of one executing run, written to runs.progress and sent with NOTIFY at most
 * every PROGRESS_INTERVAL_MS (and at stage starts and the run's end).
 */
class ProgressPublisher {
  private state: RunProgressJson;
  private stageStartedAt = Date.now();
  private firstStep: { step: number; at: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly dataSource: DataSource,
    runId: string,
  ) {
    this.state = { runId, status: RunStatus.running, stageIndex: null, plugin: null, step: 0, total: 0, elapsedMs: 0, etaMs: null, metrics: {}, updatedAt: new Date().toISOString() };
  }

  stageStarted(index: number, plugin: string): void {
    this.stageStartedAt = Date.now();
    this.firstStep = undefined;
    this.state = { ...this.state, stageIndex: index, plugin, step: 0, total: 0, etaMs: null, metrics: {} };
    void this.publish(RunStatus.running);
  }

  report(step: number, total: number, metrics: Record<string, number>): void {
    const now = Date.now();
    // The rate is measured from this attempt's first report, so a resumed stage's ETA is not skewed.
    this.firstStep ??= { step, at: now };
    const done = step - this.firstStep.step;
    const etaMs = done > 0 ? ((now - this.firstStep.at) / done) * Math.max(0, total - step) : null;
    this.state = { ...this.state, step, total, elapsedMs: now - this.stageStartedAt, etaMs, metrics: { ...this.state.metrics, ...metrics } };
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.publish(RunStatus.running);
    }, PROGRESS_INTERVAL_MS);
  }

  /** Writes and announces the current state with `status`; writes happen in order. */
  publish(status: RunStatus): Promise<void> {
    this.state = { ...this.state, status, updatedAt: new Date().toISOString() };
    const json = compactProgress(this.state);
    this.writing = this.writing
      .then(async () => {
        await this.dataSource.query(`WITH updated AS (UPDATE runs SET progress = $2::jsonb WHERE id = $1 RETURNING id) SELECT pg_notify($3, $2::text) FROM updated`, [
          json.runId,
          JSON.stringify(json),
          PROGRESS_CHANNEL,
        ]);
      })
      .catch(() => undefined);
    return this.writing;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function describeFailure(error: unknown): { status: RunStatus; code: string; message: string } {
  if (error instanceof StageCancelledError) return { status: RunStatus.cancelled, code: 'CANCELLED', message: 'cancelled by request' };
  if (error instanceof TrainingDivergedError) return { status: RunStatus.failed, code: 'TRAINING_DIVERGED', message: error.message };
  if (error instanceof TensorDeviceError) {
    return { status: RunStatus.failed, code: 'DEVICE_ERROR', message: `${error.message}; run again, or with CONDENSE_BACKEND=wasm, and report it` };
  }
  if (error instanceof PluginInputError || error instanceof PipelineValidationError || error instanceof InvalidInputError) {
    return { status: RunStatus.failed, code: 'BAD_USER_INPUT', message: error.message };
  }
  const message = error instanceof Error ? error.message : String(error);
  if (/out of memory|OOM|Cannot allocate|Array buffer allocation failed/i.test(message)) {
    return { status: RunStatus.failed, code: 'OUT_OF_MEMORY', message: `${message}; try a smaller batchSize` };
  }
  return { status: RunStatus.failed, code: 'STAGE_FAILED', message };
}
