import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
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
import { attachSubscriptionServer, NO_TOPIC_PUBSUB } from './subscriptions';
import { artifactRoutes } from './artifact-routes';
import { ResponseCache, responseCachePlugin, serveCachedResponses } from './response-cache';
import { bodyErrorHandler, LIMIT_RULES, limitsFormatError, markEndpoint, QUERY_LIMITS, refuseBatches, refuseOverLimitQueries, UPLOAD_PATH, uploadEndpointPlugin } from './limits';

/** Largest request body at /graphql; model uploads (base64 weights) go to UPLOAD_PATH (see limits.ts). */
export const BODY_LIMIT = QUERY_LIMITS.bodyLimit;
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
    pubSub: NO_TOPIC_PUBSUB,
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
  // Subscriptions (graphql-ws) share the path; stopped before Apollo drains the HTTP server.
  const stopSubscriptions = attachSubscriptionServer(httpServer, schema, GRAPHQL_PATH, appContainer, log);
  const responseCache = new ResponseCache(schema);
  appContainer.registerInstance(ResponseCache, responseCache);
  const apollo = new ApolloServer<CondenseContext>({
    schema,
    introspection: true,
    includeStacktraceInErrorResponses: false,
    formatError: limitsFormatError(createFormatError(log)),
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      uploadEndpointPlugin,
      // Condense sends no cache hints (freshness is VersionedCache's job); the default cache-control plugin would wrap
      // every field's resolver to compute them.
      ApolloServerPluginCacheControlDisabled(),
      responseCachePlugin(responseCache),
      { serverWillStart: async () => ({ drainServer: stopSubscriptions }) },
    ],
    validationRules: LIMIT_RULES,
    parseOptions: { maxTokens: QUERY_LIMITS.maxTokens },
    allowBatchedHttpRequests: false,
  });
  await apollo.start();
  app.disable('x-powered-by');
  app.get('/health', (_req, res) => {
    res.json({ ok: true });
  });
  app.use(artifactRoutes(appContainer, log));
  const auth = appContainer.resolve(AuthService);
  const graphqlContext = createContextFunction(auth);
  const limits = refuseOverLimitQueries(schema);
  // Before GRAPHQL_PATH, which would also match this path as a prefix.
  app.use(UPLOAD_PATH, markEndpoint('upload'), express.json({ limit: QUERY_LIMITS.uploadBodyLimit }), refuseBatches, limits, expressMiddleware(apollo, { context: graphqlContext }));
  app.use(
    GRAPHQL_PATH,
    markEndpoint('graphql'),
    express.json({ limit: BODY_LIMIT }),
    refuseBatches,
    limits,
    serveCachedResponses(responseCache, auth),
    expressMiddleware(apollo, { context: graphqlContext }),
  );
  app.use(bodyErrorHandler);
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
