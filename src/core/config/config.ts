import path from 'node:path';
import { z } from 'zod';

/** Names the backends Condense can run tensors on, in order of preference. */
export const BACKEND_NAMES = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

const environmentSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  CONDENSE_DATA_DIR: z.string().min(1).default('./.condense'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'DATABASE_URL must be a postgres:// or postgresql:// URL')
    .optional(),
  CONDENSE_BACKEND: z.enum(BACKEND_NAMES).optional(),
  CONDENSE_EMBEDDED_PG_PORT: z.coerce.number().int().min(1).max(65535).default(54329),
  CONDENSE_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CONDENSE_WORKER_CONCURRENCY: z.coerce.number().int().min(0).max(64).default(1),
  CONDENSE_RUN_STALE_SECONDS: z.coerce.number().int().min(3).max(3600).default(30),
});

export interface CondenseConfig {
  port: number;
  /** Absolute path of the directory holding the embedded database, artifacts and dataset caches. */
  dataDir: string;
  /** External Postgres; when absent, an embedded Postgres is started under `dataDir/postgres`. */
  databaseUrl?: string;
  /** Forced tensor backend; when absent, the best available one is chosen. */
  backend?: BackendName;
  embeddedPostgresPort: number;
  logLevel: string;
  /** Runs a process executes at once (`serve` and `worker`); 0: this process queues runs but executes none. Default 1. */
  workerConcurrency?: number;
  /** A running run whose worker has not sent a heartbeat for this long is taken over by another worker. Default 30. */
  runStaleSeconds?: number;
}

export class ConfigError extends Error {}

/** Reads and validates the environment once; everything else receives the typed result. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): CondenseConfig {
  const parsed = environmentSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`Invalid environment: ${problems}`);
  }
  const e = parsed.data;
  return {
    port: e.PORT,
    dataDir: path.resolve(e.CONDENSE_DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    backend: e.CONDENSE_BACKEND,
    embeddedPostgresPort: e.CONDENSE_EMBEDDED_PG_PORT,
    logLevel: e.CONDENSE_LOG_LEVEL,
    workerConcurrency: e.CONDENSE_WORKER_CONCURRENCY,
    runStaleSeconds: e.CONDENSE_RUN_STALE_SECONDS,
  };
}
