import { inject, injectable } from 'tsyringe';
import { DataSource } from 'typeorm';
import type { Caller } from '../auth/auth.service';
import { CONFIG, LOGGER } from '../app/tokens';
import { parseId, parseName } from '../app/validation';
import type { CondenseConfig } from '../config/config';
import { loadDataset, parseDatasetSource, validateDatasetSource, type DatasetSource } from '../data/catalog';
import { datasetHash } from '../data/hash';
import type { LabelledDataset } from '../data/image-set';
import { isUniqueViolation } from '../db/pg-errors';
import { ConflictError, NotFoundError } from '../errors';
import type { Logger } from '../logging/logger';
import { DatasetRecord } from '../records/dataset.entity';
import { ProjectService } from './project.service';

/** Registered data sets of a project: checked, loaded once to count and hash, then recorded. */
@injectable()
export class DatasetService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly projects: ProjectService,
    @inject(CONFIG) private readonly config: CondenseConfig,
    @inject(LOGGER) private readonly log: Logger,
  ) {}

  /**
   * Registers a data set. The source is validated first (paths exist, headers agree) so a bad
   * path fails fast with a DatasetError, and nothing is stored unless loading succeeds.
   */
  async register(caller: Caller, projectId: string, name: string, rawSource: unknown): Promise<DatasetRecord> {
    const project = await this.projects.require(caller, projectId);
    const datasetName = parseName('dataset name', name);
    const source = parseDatasetSource(rawSource);
    validateDatasetSource(source);
    const repo = this.dataSource.getRepository(DatasetRecord);
    if (await repo.existsBy({ projectId: project.id, name: datasetName })) throw this.nameTaken(datasetName);

    const started = Date.now();
    const dataset = await this.load(source);
    const record = repo.create({
      projectId: project.id,
      name: datasetName,
      source: source as unknown as Record<string, unknown>,
      provenance: dataset.provenance,
      numClasses: dataset.train.numClasses,
      classNames: dataset.classNames,
      trainCount: dataset.train.count,
      testCount: dataset.test.count,
      inputShape: [...dataset.train.shape],
      contentHash: datasetHash(dataset),
    });
    try {
      const saved = await repo.save(record);
      this.log.info({ dataset: saved.id, name: datasetName, ms: Date.now() - started }, 'registered dataset');
      return saved;
    } catch (error) {
      if (isUniqueViolation(error, 'datasets_project_name_unique')) throw this.nameTaken(datasetName);
      throw error;
    }
  }

  list(projectId: string): Promise<DatasetRecord[]> {
    return this.dataSource.getRepository(DatasetRecord).find({ where: { projectId }, order: { createdAt: 'ASC' } });
  }

  /** A data set of one of the caller's projects. */
  async require(caller: Caller, datasetId: string): Promise<DatasetRecord> {
    const record = await this.dataSource.getRepository(DatasetRecord).findOneBy({ id: parseId('datasetId', datasetId) });
    if (!record) throw new NotFoundError(`no dataset with id ${datasetId}`);
    await this.projects.require(caller, record.projectId);
    return record;
  }

  /** Loads a recorded data set into memory (from the cache for built-ins). */
  loadRecord(record: DatasetRecord): Promise<LabelledDataset> {
    return this.load(record.source as unknown as DatasetSource);
  }

  private load(source: DatasetSource): Promise<LabelledDataset> {
    return loadDataset(source, { dataDir: this.config.dataDir, log: this.log });
  }

  private nameTaken(name: string): ConflictError {
    return new ConflictError(`this project already has a dataset named "${name}"; choose another name`);
  }
}
