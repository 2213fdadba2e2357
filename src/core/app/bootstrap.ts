import { ComparisonService } from '../history/comparison.service';
import { HistoryService } from '../history/history.service';
import { VersionedCache } from '../history/versioned-cache';
import fs from 'node:fs';
import { container, type DependencyContainer } from 'tsyringe';
import { DataSource } from 'typeorm';
import { ArtifactStore } from '../artifacts/artifact-store';
import { AuthService } from '../auth/auth.service';
import { TeamService } from '../auth/team.service';
import type { CondenseConfig } from '../config/config';
import { createDataSource, runMigrationsLocked } from '../db/data-source';
import { startDatabase, type DatabaseHandle } from '../db/embedded-postgres';
import type { Logger } from '../logging/logger';
import { loadPluginRegistry, PluginRegistry } from '../plugins/registry';
import { DatasetService } from '../projects/dataset.service';
import { ModelService } from '../projects/model.service';
import { PluginEnablementService } from '../projects/plugin-enablement.service';
import { ProjectService } from '../projects/project.service';
import { RunQueue } from '../queue/run-queue';
import { RunExecutor } from '../runs/run-executor';
import { ProgressHub } from '../runs/run-progress';
import { RunService } from '../runs/run.service';
import { RunWorker } from '../runs/run-worker';
import { initTensorBackend, type TensorBackendInfo } from '../tensors/backend';
import { startGraphQLServer } from '../../graphql/server';
import { CONFIG, LOGGER } from './tokens';

export interface CondenseApp {
  /** The GraphQL endpoint, http://localhost:<port>/graphql. */
  url: string;
  port: number;
  container: DependencyContainer;
  dataSource: DataSource;
  backend: TensorBackendInfo;
  /** Where the first start wrote the admin token; undefined on later starts. */
  adminTokenFile?: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** plugins.json to load (default: the project's). */
  pluginsJsonPath?: string;
  /** Serve the GraphQL API (default true); the CLI's `run` and `worker` use the services without it. */
  http?: boolean;
  /** Runs this process executes at once; default `config.workerConcurrency` (1). 0: queue runs, execute none. */
  workerConcurrency?: number;
}

/** Services kept one per app; any other injectable class is built when asked for. */
const SINGLETON_SERVICES: Array<new (...args: any[]) => unknown> = [ArtifactStore, AuthService, TeamService, ProjectService, PluginEnablementService, DatasetService, ModelService, RunService, RunExecutor, RunWorker, ProgressHub, VersionedCache, HistoryService, ComparisonService];

/**
 * Starts Condense: the database (embedded unless DATABASE_URL is set), migrations, the tensor
 * backend, the plugin registry, the first admin token, and the GraphQL server on `config.port`.
 */
export async function startCondense(config: CondenseConfig, log: Logger, options: StartOptions = {}): Promise<CondenseApp> {
  fs.mkdirSync(config.dataDir, { recursive: true });
  const cleanups: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        log.warn({ err: error }, 'error while stopping');
      }
    }
    cleanups.length = 0;
  };
  try {
    const database: DatabaseHandle = await startDatabase(config, log);
    cleanups.push(() => database.stop());
    const dataSource = await createDataSource(database.url).initialize();
    cleanups.push(() => dataSource.destroy());
    await runMigrationsLocked(dataSource, log);

    const backend = await initTensorBackend(config.backend, log);
    const registry = loadPluginRegistry(options.pluginsJsonPath);

    const appContainer = container.createChildContainer();
    appContainer.registerInstance(CONFIG, config);
    appContainer.registerInstance(LOGGER, log);
    appContainer.registerInstance(DataSource, dataSource);
    appContainer.registerInstance(PluginRegistry, registry);
    for (const service of SINGLETON_SERVICES) appContainer.registerSingleton(service);

    const adminTokenFile = await appContainer.resolve(AuthService).ensureAdminToken();
    // Runs are pg-boss jobs in the same database; progress events travel by LISTEN/NOTIFY.
    const queue = await RunQueue.start(database.url, log);
    cleanups.push(() => queue.stop());
    appContainer.registerInstance(RunQueue, queue);
    const hub = appContainer.resolve(ProgressHub);
    await hub.start(database.url);
    cleanups.push(() => hub.stop());
    // The worker resumes runs that a stopped or killed process left behind (see RunWorker).
    const concurrency = options.workerConcurrency ?? config.workerConcurrency ?? 1;
    if (concurrency > 0) {
      const worker = appContainer.resolve(RunWorker);
      await worker.start(concurrency);
      cleanups.push(() => worker.stop());
    }
    const server = options.http === false ? undefined : await startGraphQLServer(appContainer, config.port, log);
    if (server) {
      cleanups.push(() => server.stop());
      log.info({ url: server.url, backend: backend.name, plugins: registry.list().map((p) => p.name) }, 'Condense is listening');
    }
    return {
      url: server?.url ?? '',
      port: server?.port ?? 0,
      container: appContainer,
      dataSource,
      backend,
      adminTokenFile,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Applies pending migrations and stops; returns the names of the migrations applied. */
export async function migrateOnly(config: CondenseConfig, log: Logger): Promise<string[]> {
  fs.mkdirSync(config.dataDir, { recursive: true });
  const database = await startDatabase(config, log);
  try {
    const dataSource = await createDataSource(database.url).initialize();
    try {
      return await runMigrationsLocked(dataSource, log);
    } finally {
      await dataSource.destroy();
    }
  } finally {
    await database.stop();
  }
}
