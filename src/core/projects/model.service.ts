import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inject, injectable } from 'tsyringe';
import { DataSource, type EntityManager } from 'typeorm';
import { z } from 'zod';
import { ArtifactStore } from '../artifacts/artifact-store';
import type { Caller } from '../auth/auth.service';
import { CONFIG, LOGGER } from '../app/tokens';
import { parseId, parseName } from '../app/validation';
import type { CondenseConfig } from '../config/config';
import { randomSubset } from '../data/image-set';
import { isUniqueViolation } from '../db/pg-errors';
import { ConflictError, InvalidInputError, NotFoundError } from '../errors';
import type { Logger } from '../logging/logger';
import { countMacs, countParams } from '../models/model-metrics';
import { loadModelDir, loadModelFromFiles, modelContentHash, ModelFormatError, saveModelDir, WEIGHTS_FILE } from '../models/model-files';
import { modelInputShape, modelNumClasses, validateModelSpec, type ModelHandle, type ModelSpec } from '../models/model-spec';
import { buildModel } from '../models/zoo';
import { Artifact } from '../records/artifact.entity';
import { ModelOrigin } from '../records/enums';
import { ModelRecord } from '../records/model.entity';
import { evaluateClassifier } from '../training/evaluator';
import { trainClassifier } from '../training/trainer';
import { DatasetService } from './dataset.service';
import { ProjectService } from './project.service';

/** Options of `trainModel`, validated here (GraphQL passes them through as given). */
export const trainingOptionsSchema = z.strictObject({
  epochs: z.number().int().min(1).max(1000).default(1),
  batchSize: z.number().int().min(1).max(4096).default(64),
  optimizer: z.enum(['sgd', 'adam']).default('adam'),
  learningRate: z.number().positive().max(10).default(0.001),
  momentum: z.number().min(0).max(1).optional(),
  weightDecay: z.number().min(0).max(1).optional(),
  schedule: z.enum(['cosine', 'constant']).optional(),
  warmupSteps: z.number().int().min(0).optional(),
  augmentFlip: z.boolean().default(false),
  augmentCropPadding: z.number().int().min(0).max(16).default(0),
  /** Seeds the initial weights, shuffling and augmentation. */
  seed: z.number().int().min(0).max(0x7fffffff).default(0),
  /** Train on a seeded random subset of this many training images (all when absent). */
  trainImages: z.number().int().min(1).optional(),
});
export type TrainingOptionsInput = z.input<typeof trainingOptionsSchema>;

/** A zoo spec as it arrives from a client: shape and classes may come from the dataset when training. */
export interface ModelSpecInput {
  architecture: string;
  inputShape?: number[] | null;
  numClasses?: number | null;
  width?: number | null;
  depth?: number | null;
}

/** What `recordModel` stores besides the network itself. */
export interface RecordModelInput {
  projectId: string;
  name: string;
  handle: ModelHandle;
  origin: ModelOrigin;
  classNames?: string[];
  metrics?: Record<string, unknown>;
  datasetId?: string | null;
  runId?: string | null;
  /** Save inside this transaction. */
  manager?: EntityManager;
}

/** Models of a project: imported, uploaded, built from the zoo, trained, or produced by runs. */
@injectable()
export class ModelService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly projects: ProjectService,
    private readonly datasets: DatasetService,
    private readonly store: ArtifactStore,
    @inject(CONFIG) private readonly config: CondenseConfig,
    @inject(LOGGER) private readonly log: Logger,
  ) {}

  list(projectId: string): Promise<ModelRecord[]> {
    return this.dataSource.getRepository(ModelRecord).find({ where: { projectId }, order: { createdAt: 'ASC' } });
  }

  /** A model of one of the caller's projects. */
  async require(caller: Caller, modelId: string): Promise<ModelRecord> {
    const record = await this.dataSource.getRepository(ModelRecord).findOneBy({ id: parseId('modelId', modelId) });
    if (!record) throw new NotFoundError(`no model with id ${modelId}`);
    await this.projects.require(caller, record.projectId);
    return record;
  }

  /** Loads a recorded model from the artifact store. The caller disposes `handle.model`. */
  async loadModel(record: ModelRecord): Promise<ModelHandle> {
    const artifact = await this.dataSource.getRepository(Artifact).findOneByOrFail({ id: record.artifactId });
    const handle = await loadModelDir(this.store.pathOf(artifact));
    return { ...handle, name: record.name };
  }

  /**
   * Writes a stored model as a TF.js LayersModel directory (model.json + weights.bin) to `dir` on the
   * server's file system; `dir` must not exist or be empty, so nothing is overwritten.
   */
  async exportModel(caller: Caller, modelId: string, dir: string): Promise<{ path: string; bytes: number; contentHash: string }> {
    const record = await this.require(caller, modelId);
    if (typeof dir !== 'string' || dir.trim() === '') throw new InvalidInputError('path must name a directory to write the model to');
    const target = path.resolve(dir);
    if (fs.existsSync(target) && (!fs.statSync(target).isDirectory() || fs.readdirSync(target).length > 0)) {
      throw new InvalidInputError(`${target} already exists and is not an empty directory; choose a new path`);
    }
    const artifact = await this.dataSource.getRepository(Artifact).findOneByOrFail({ id: record.artifactId });
    fs.mkdirSync(target, { recursive: true });
    fs.cpSync(this.store.pathOf(artifact), target, { recursive: true });
    return { path: target, bytes: artifact.bytes, contentHash: record.contentHash };
  }

  /** Imports a TF.js LayersModel directory from the server's file system. */
  async importModel(caller: Caller, projectId: string, name: string, dir: string): Promise<ModelRecord> {
    const { project, modelName } = await this.prepare(caller, projectId, name);
    if (typeof dir !== 'string' || dir.trim() === '') throw new InvalidInputError('path must name a model directory');
    const handle = await loadModelDir(path.resolve(dir));
    return this.recordAndDispose({ projectId: project.id, name: modelName, handle, origin: ModelOrigin.imported });
  }

  /**
   * Stores an uploaded LayersModel: model.json text and all its weights as one base64 blob (the
   * weight files of the manifest concatenated in manifest order, which is how TF.js reads shards).
   */
  async uploadModel(caller: Caller, projectId: string, name: string, modelJson: string, weightsBase64: string): Promise<ModelRecord> {
    const { project, modelName } = await this.prepare(caller, projectId, name);
    const weights = decodeBase64(weightsBase64);
    const handle = await loadModelFromFiles({ modelJson: singleShardModelJson(modelJson), weights: new Map([[WEIGHTS_FILE, weights]]) });
    return this.recordAndDispose({ projectId: project.id, name: modelName, handle, origin: ModelOrigin.imported });
  }

  /** Builds an untrained zoo model (for students and tests). */
  async createZooModel(caller: Caller, projectId: string, name: string, specInput: ModelSpecInput, seed = 0): Promise<ModelRecord> {
    const { project, modelName } = await this.prepare(caller, projectId, name);
    const spec = toModelSpec(specInput);
    const handle: ModelHandle = { name: modelName, model: buildModel(spec, seed), spec };
    return this.recordAndDispose({ projectId: project.id, name: modelName, handle, origin: ModelOrigin.zoo, metrics: { seed } });
  }

  /**
   * Trains a zoo model on a registered dataset's training split and evaluates it on the test split;
   * stores it with top1, top5 and trainMs. Runs in the request for now.
   */
  async trainModel(
    caller: Caller,
    projectId: string,
    name: string,
    specInput: ModelSpecInput,
    datasetId: string,
    optionsInput: TrainingOptionsInput = {},
    onStep?: (step: number, total: number, metrics: Record<string, number>) => void,
  ): Promise<ModelRecord> {
    const { project, modelName } = await this.prepare(caller, projectId, name);
    const options = trainingOptionsSchema.parse(optionsInput);
    const record = await this.datasets.require(caller, datasetId);
    if (record.projectId !== project.id) throw new InvalidInputError(`dataset ${datasetId} belongs to another project; register it in this one`);
    const spec = toModelSpec({
      ...specInput,
      inputShape: specInput.inputShape ?? record.inputShape,
      numClasses: specInput.numClasses ?? record.numClasses,
    });
    if (JSON.stringify(spec.inputShape) !== JSON.stringify(record.inputShape)) {
      throw new InvalidInputError(
        `the model's inputShape ${JSON.stringify(spec.inputShape)} does not match dataset "${record.name}" images ${JSON.stringify(record.inputShape)}; leave inputShape out to take the dataset's`,
      );
    }
    if (spec.numClasses !== record.numClasses) {
      throw new InvalidInputError(`the model has ${spec.numClasses} classes but dataset "${record.name}" has ${record.numClasses}; leave numClasses out to take the dataset's`);
    }
    const dataset = await this.datasets.loadRecord(record);
    const train = options.trainImages === undefined ? dataset.train : randomSubset(dataset.train, options.trainImages, options.seed);

    const handle: ModelHandle = { name: modelName, model: buildModel(spec, options.seed), spec };
    try {
      const summary = await trainClassifier(handle.model, train, {
        epochs: options.epochs,
        batchSize: options.batchSize,
        optimizer: options.optimizer,
        learningRate: options.learningRate,
        momentum: options.momentum,
        weightDecay: options.weightDecay,
        schedule: options.schedule,
        warmupSteps: options.warmupSteps,
        augment: { flip: options.augmentFlip, cropPadding: options.augmentCropPadding },
        seed: options.seed,
      }, { onStep: onStep ? (step, total, { extra: _extra, ...metrics }) => onStep(step, total, metrics) : undefined });
      const evaluation = await evaluateClassifier(handle.model, dataset.test);
      this.log.info({ model: modelName, top1: evaluation.top1, trainMs: summary.wallMs }, 'trained model');
      return await this.recordModel({
        projectId: project.id,
        name: modelName,
        handle,
        origin: ModelOrigin.trained,
        classNames: dataset.classNames,
        datasetId: record.id,
        metrics: {
          top1: evaluation.top1,
          top5: evaluation.top5,
          testLoss: evaluation.loss,
          trainMs: summary.wallMs,
          trainLoss: summary.finalLoss,
          steps: summary.steps,
          trainImages: train.count,
          testImages: dataset.test.count,
          training: options,
        },
      });
    } finally {
      handle.model.dispose();
    }
  }

  /**
   * Saves a model in memory to the artifact store and records it, in one transaction (the caller's
   * when `manager` is given). Used by imports, training and pipeline runs.
   */
  async recordModel(input: RecordModelInput): Promise<ModelRecord> {
    const { handle } = input;
    const inputShape = modelInputShape(handle);
    const numClasses = modelNumClasses(handle);
    const classNames = input.classNames ?? Array.from({ length: numClasses }, (_, i) => String(i));
    if (classNames.length !== numClasses) {
      throw new InvalidInputError(`the model has ${numClasses} outputs but ${classNames.length} class names were given`);
    }
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-model-'));
    try {
      await saveModelDir(handle.model, tmp, { spec: handle.spec, name: input.name });
      const contentHash = await modelContentHash(tmp);
      const params = countParams(handle.model).total;
      const macs = countMacs(handle.model);
      const save = async (manager: EntityManager) => {
        const artifact = await this.store.putDirectory('model', tmp, { manager, runId: input.runId ?? null });
        const repo = manager.getRepository(ModelRecord);
        return repo.save(
          repo.create({
            projectId: input.projectId,
            name: input.name,
            architecture: handle.spec?.architecture ?? 'custom',
            spec: (handle.spec as unknown as Record<string, unknown>) ?? null,
            inputShape,
            numClasses,
            classNames,
            artifactId: artifact.id,
            contentHash,
            params,
            macs,
            bytes: artifact.bytes,
            metrics: input.metrics ?? {},
            origin: input.origin,
            datasetId: input.datasetId ?? null,
            runId: input.runId ?? null,
          }),
        );
      };
      try {
        return input.manager ? await save(input.manager) : await this.dataSource.transaction(save);
      } catch (error) {
        if (isUniqueViolation(error, 'models_project_name_unique')) throw this.nameTaken(input.name);
        throw error;
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  private async recordAndDispose(input: RecordModelInput): Promise<ModelRecord> {
    try {
      return await this.recordModel(input);
    } finally {
      input.handle.model.dispose();
    }
  }

  /** Checks the project and that the name is free before any expensive work. */
  private async prepare(caller: Caller, projectId: string, name: string) {
    const project = await this.projects.require(caller, projectId);
    const modelName = parseName('model name', name);
    if (await this.dataSource.getRepository(ModelRecord).existsBy({ projectId: project.id, name: modelName })) {
      throw this.nameTaken(modelName);
    }
    return { project, modelName };
  }

  private nameTaken(name: string): ConflictError {
    return new ConflictError(`this project already has a model named "${name}"; choose another name`);
  }
}

function toModelSpec(input: ModelSpecInput): ModelSpec {
  const spec = {
    architecture: input.architecture,
    inputShape: input.inputShape,
    numClasses: input.numClasses,
    width: input.width ?? 1,
    ...(input.depth != null ? { depth: input.depth } : {}),
  } as ModelSpec;
  return validateModelSpec(spec); // ModelSpecError names the bad field
}


function decodeBase64(text: string): Buffer {
  const compact = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(compact) || compact.length % 4 === 1) {
    throw new ModelFormatError('weightsBase64 is not valid base64; send the weight file(s) bytes base64-encoded');
  }
  return Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64');
}

/**
 * Rewrites model.json so that its weights manifest is one group read from `weights.bin`: TF.js
 * concatenates shards in manifest order, so the uploaded concatenation is that one file. Text that
 * is not a LayersModel is passed on unchanged for loadModelFromFiles to explain.
 */
function singleShardModelJson(text: string): string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return text;
  }
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { weightsManifest?: unknown }).weightsManifest)) return text;
  const groups = (json as { weightsManifest: Array<{ weights?: unknown }> }).weightsManifest;
  if (!groups.every((g) => typeof g === 'object' && g !== null && Array.isArray(g.weights))) return text;
  const weights = groups.flatMap((g) => g.weights as unknown[]);
  return JSON.stringify({ ...(json as object), weightsManifest: [{ paths: [WEIGHTS_FILE], weights }] });
}
