import { randomUUID } from 'node:crypto';
import type { ContextFunction } from '@apollo/server';
import type { ExpressContextFunctionArgument } from '@as-integrations/express5';
import { GraphQLError, Kind, parse, type DocumentNode, type SelectionSetNode } from 'graphql';
import type { AuthService, Caller } from '../core/auth/auth.service';
import { bearerToken } from '../core/auth/tokens';
import { UnauthenticatedError } from '../core/errors';
import type { Member } from '../core/records/member.entity';
import type { Team } from '../core/records/team.entity';
import { authenticatedCaller, responseCacheSlot, type ResponseCacheSlot } from './response-cache';

/**
 * What every resolver gets, built once per request. `caller` and `team` are always there for
 * resolvers: a request without a valid token is refused before execution unless it only asks for
 * the schema (introspection), which never reaches a resolver.
 */
export interface CondenseContext {
  requestId: string;
  caller: Member;
  team: Team;
  /** caller + team + token id, as services take it. */
  auth: Caller;
  /** Set when the response cache will keep this request's answer (response-cache.ts). */
  responseCacheSlot?: ResponseCacheSlot;
}

const INTROSPECTION_FIELDS = new Set(['__schema', '__type', '__typename']);

/** True when every operation in the document selects only `__schema`, `__type` or `__typename` at its root. */
export function isIntrospectionOnly(document: DocumentNode): boolean {
  const fragments = new Map<string, SelectionSetNode>();
  for (const def of document.definitions) {
    if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def.selectionSet);
  }
  const rootOnlyIntrospection = (set: SelectionSetNode, seen: Set<string>): boolean =>
    set.selections.every((sel) => {
      if (sel.kind === Kind.FIELD) return INTROSPECTION_FIELDS.has(sel.name.value);
      if (sel.kind === Kind.INLINE_FRAGMENT) return rootOnlyIntrospection(sel.selectionSet, seen);
      const name = sel.name.value;
      const fragment = fragments.get(name);
      if (!fragment || seen.has(name)) return false;
      return rootOnlyIntrospection(fragment, new Set([...seen, name]));
    });
  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  return operations.length > 0 && operations.every((op) => op.kind === Kind.OPERATION_DEFINITION && rootOnlyIntrospection(op.selectionSet, new Set()));
}

function queryText(req: ExpressContextFunctionArgument['req']): string | undefined {
  const body = req.body as { query?: unknown } | undefined;
  if (body && typeof body.query === 'string') return body.query;
  const q = req.query?.query;
  return typeof q === 'string' ? q : undefined;
}

function requestIsIntrospectionOnly(req: ExpressContextFunctionArgument['req']): boolean {
  const text = queryText(req);
  if (text === undefined) return false;
  try {
    return isIntrospectionOnly(parse(text));
  } catch {
    return false; // not parseable: it needs a token like anything else (Apollo reports the syntax error to callers who have one)
  }
}

function unauthenticated(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
}

/**
 * The context of a schema-only request: touching the caller is a bug, and says so. Getters live on
 * the prototype because Apollo copies contexts with Object.assign, which would call own getters.
 */
class AnonymousContext implements CondenseContext {
  constructor(readonly requestId: string) {}
  get caller(): Member {
    throw unauthenticated('this request carries no API token; send "Authorization: Bearer <token>"');
  }
  get team(): Team {
    return this.caller as never;
  }
  get auth(): Caller {
    return this.caller as never;
  }
}

/** Builds the per-request context: authenticates the bearer token, or lets introspection through without one. */
export function createContextFunction(auth: AuthService): ContextFunction<[ExpressContextFunctionArgument], CondenseContext> {
  return async ({ req }) => {
    const requestId = randomUUID();
    const token = bearerToken(req.headers.authorization);
    if (token === undefined) {
      if (requestIsIntrospectionOnly(req)) return new AnonymousContext(requestId);
      throw unauthenticated(
        req.headers.authorization
          ? 'malformed Authorization header; expected "Authorization: Bearer <token>"'
          : 'missing API token; send "Authorization: Bearer <token>" (the first admin token is in <dataDir>/admin-token)',
      );
    }
    try {
      const caller = authenticatedCaller(req) ?? (await auth.authenticate(token));
      return { requestId, caller: caller.member, team: caller.team, auth: caller, responseCacheSlot: responseCacheSlot(req) };
    } catch (error) {
      if (error instanceof UnauthenticatedError) throw unauthenticated(error.message);
      throw error;
    }
  };
}
