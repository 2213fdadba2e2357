import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { GraphQLError, specifiedRules, validate, type GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { DependencyContainer } from 'tsyringe';
import type { PubSub } from 'type-graphql';
import { WebSocketServer } from 'ws';
import { AuthService, type Caller } from '../core/auth/auth.service';
import { bearerToken } from '../core/auth/tokens';
import { UnauthenticatedError } from '../core/errors';
import type { Logger } from '../core/logging/logger';
import { RunStatus } from '../core/records/enums';
import type { RunProgress } from '../core/runs/run-progress';
import { RunService } from '../core/runs/run.service';
import type { CondenseContext } from './context';
import { codeOf } from './error-mapper';
import { LIMIT_RULES } from './limits';

/**
 * type-graphql insists on a PubSub once a schema has subscriptions, even when each subscription has
 * its own `subscribe` (ours do, fed by Postgres NOTIFY): this one refuses topic-based use.
 */
export const NO_TOPIC_PUBSUB: PubSub = {
  publish() {
    throw new Error('Condense subscriptions have their own event sources; topic publishing is not used');
  },
  subscribe() {
    throw new Error('Condense subscriptions have their own event sources; topic subscriptions are not used');
  },
};

/** The context of a graphql-ws connection: the caller, and the run service to subscribe with. */
export interface SubscriptionContext extends CondenseContext {
  runs: RunService;
}

const ENDED: RunStatus[] = [RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled];

/**
 * The progress of one run as an async iterator: its latest stored state first (if any), then each
 * event as it arrives, ending after the event that reports the run's end. Events that arrive faster
 * than the client reads them are coalesced to the newest, as each carries the whole state.
 */
export async function runProgressStream(runs: RunService, runId: string, latest: () => Promise<RunProgress | null>): Promise<AsyncIterableIterator<RunProgress>> {
  let pending: RunProgress | undefined;
  let wake: (() => void) | undefined;
  let done: 'no' | 'after-pending' | 'yes' = 'no';
  const unsubscribe = runs.onProgress((progress) => {
    if (done !== 'no') return;
    pending = progress;
    if (ENDED.includes(progress.status)) done = 'after-pending';
    wake?.();
  }, runId);
  // Read the stored state only once subscribed, so an end between the two is not missed.
  const initial = await latest().catch((error: unknown) => {
    unsubscribe();
    throw error;
  });
  if (initial && pending === undefined) {
    pending = initial;
    if (ENDED.includes(initial.status)) done = 'after-pending';
  }
  const finish = (): IteratorResult<RunProgress> => {
    done = 'yes';
    unsubscribe();
    wake?.();
    return { value: undefined, done: true };
  };
  const iterator: AsyncIterableIterator<RunProgress> = {
    async next() {
      while (pending === undefined && done === 'no') await new Promise<void>((resolve) => (wake = resolve));
      if (pending !== undefined) {
        const value = pending;
        pending = undefined;
        return { value, done: false };
      }
      return finish();
    },
    async return() {
      return finish();
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

/** Maps a domain error to the GraphQL error a subscriber receives (graphql-ws does not run Apollo's formatError). */
export function asGraphQLError(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) return error;
  const code = codeOf(error);
  if (!code) return new GraphQLError('internal error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  return new GraphQLError(error instanceof Error ? error.message : String(error), { extensions: { code } });
}

/**
 * Serves GraphQL over WebSocket (graphql-ws protocol) at `path` on `httpServer`, for subscriptions.
 * Authentication as over HTTP: a bearer token, in the connection's `connectionParams` as
 * `{ authorization: "Bearer <token>" }`; a connection without a valid one is closed (4403). Documents
 * pass the same limit rules as over HTTP.
 * Returns the function that stops it.
 */
export function attachSubscriptionServer(httpServer: http.Server, schema: GraphQLSchema, path: string, appContainer: DependencyContainer, log: Logger): () => Promise<void> {
  const auth = appContainer.resolve(AuthService);
  const runs = appContainer.resolve(RunService);
  const wsServer = new WebSocketServer({ server: httpServer, path });
  const callers = new WeakMap<object, Caller>();
  const cleanup = useServer(
    {
      schema,
      // The same depth, cost and alias limits as over HTTP.
      validate: (s, document) => validate(s, document, [...specifiedRules, ...LIMIT_RULES]),
      onConnect: async (ctx) => {
        const params = (ctx.connectionParams ?? {}) as Record<string, unknown>;
        const header = typeof params.authorization === 'string' ? params.authorization : typeof params.Authorization === 'string' ? params.Authorization : undefined;
        const token = bearerToken(header);
        if (!token) return false;
        try {
          // The connection outlives the runs version read with its token: its reads fetch the current one.
          callers.set(ctx.extra, { ...(await auth.authenticate(token)), runsVersion: undefined });
          return true;
        } catch (error) {
          if (!(error instanceof UnauthenticatedError)) log.warn({ err: error }, 'could not authenticate a WebSocket connection');
          return false;
        }
      },
      context: (ctx): SubscriptionContext => {
        const caller = callers.get(ctx.extra)!;
        return { requestId: randomUUID(), caller: caller.member, team: caller.team, auth: caller, runs };
      },
    },
    wsServer,
  );
  return async () => {
    await cleanup.dispose();
    await new Promise<void>((resolve) => wsServer.close(() => resolve()));
  };
}
