import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import type { GraphQLSchema } from 'graphql';
import type { DependencyContainer } from 'tsyringe';
import { buildSchema } from 'type-graphql';
import { AuthService } from '../core/auth/auth.service';
import type { Logger } from '../core/logging/logger';
import { createContextFunction, type CondenseContext } from './context';
import { createFormatError } from './error-mapper';
import { RESOLVERS } from './resolvers';

/** Largest request body: model uploads carry base64 weights. */
export const BODY_LIMIT = '64mb';
export const GRAPHQL_PATH = '/graphql';

export interface GraphQLHttpServer {
  /** http://host:port/graphql */
  url: string;
  port: number;
  schema: GraphQLSchema;
  stop(): Promise<void>;
}

/** Builds the schema with resolvers taken from `appContainer`. */
export function buildCondenseSchema(appContainer: DependencyContainer): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers: RESOLVERS,
    container: { get: (cls) => appContainer.resolve(cls as new (...args: any[]) => unknown) },
    // Arguments are validated by the services (zod and explicit checks), not class-validator.
    validate: false,
  });
}

/** Starts Apollo Server on express at `/graphql` and listens on `port` (0: any free port). */
export async function startGraphQLServer(appContainer: DependencyContainer, port: number, log: Logger): Promise<GraphQLHttpServer> {
  const schema = await buildCondenseSchema(appContainer);
  const app = express();
  const httpServer = http.createServer(app);
  const apollo = new ApolloServer<CondenseContext>({
    schema,
    introspection: true,
    includeStacktraceInErrorResponses: false,
    formatError: createFormatError(log),
    plugins: [ApolloServerPluginDrainHttpServer({ httpServer })],
  });
  await apollo.start();
  app.disable('x-powered-by');
  app.get('/health', (_req, res) => {
    res.json({ ok: true });
  });
  app.use(
    GRAPHQL_PATH,
    express.json({ limit: BODY_LIMIT }),
    expressMiddleware(apollo, { context: createContextFunction(appContainer.resolve(AuthService)) }),
  );
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const actualPort = (httpServer.address() as AddressInfo).port;
  return {
    url: `http://localhost:${actualPort}${GRAPHQL_PATH}`,
    port: actualPort,
    schema,
    stop: () => apollo.stop(),
  };
}
