import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCondense, type CondenseApp } from '../../src/core/app/bootstrap';
import { ADMIN_TOKEN_FILE } from '../../src/core/auth/auth.service';
import type { BackendName, CondenseConfig } from '../../src/core/config/config';
import { silentLogger, type Logger } from '../../src/core/logging/logger';
import { createTestDatabase, type TestDatabase } from './database';

export interface GqlResult<T = any> {
  status: number;
  data?: T;
  errors?: Array<{ message: string; path?: string[]; extensions?: { code?: string; [k: string]: unknown } }>;
}

export interface TestServer {
  app: CondenseApp;
  url: string;
  dataDir: string;
  database: TestDatabase;
  /** The token the first start wrote to <dataDir>/admin-token. */
  adminToken: string;
  /** POSTs a GraphQL request over real HTTP; `token` defaults to the admin token, null sends none. */
  gql<T = any>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<GqlResult<T>>;
  /** Like gql, but throws unless the answer has data and no errors. */
  ok<T = any>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<T>;
  /** Stops the app; `restart()` starts it again on the same database and data directory. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Stops the app, drops the database and removes the data directory. */
  close(): Promise<void>;
}

export interface TestServerOptions {
  backend?: BackendName;
  log?: Logger;
}

/** Starts the real app (bootstrap) on a fresh database, port 0 and a temporary data directory. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const database = await createTestDatabase();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-test-'));
  const config: CondenseConfig = {
    port: 0,
    dataDir,
    databaseUrl: database.url,
    backend: options.backend ?? 'wasm',
    embeddedPostgresPort: 1,
    logLevel: 'silent',
  };
  const log = options.log ?? silentLogger;
  let app = await startCondense(config, log);
  const adminToken = fs.readFileSync(path.join(dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();

  const server: TestServer = {
    app,
    url: app.url,
    dataDir,
    database,
    adminToken,
    async gql(query, variables, token) {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      const bearer = token === undefined ? adminToken : token;
      if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
      const response = await fetch(server.url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      const body = (await response.json()) as GqlResult;
      return { ...body, status: response.status };
    },
    async ok(query, variables, token) {
      const result = await server.gql(query, variables, token);
      if (result.errors || !result.data) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
      return result.data;
    },
    async stop() {
      await app.stop();
    },
    async restart() {
      app = await startCondense(config, log);
      server.app = app;
      server.url = app.url;
    },
    async close() {
      await app.stop();
      await database.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}
