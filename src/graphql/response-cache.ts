import type { ApolloServerPlugin } from '@apollo/server';
import type { Request, RequestHandler } from 'express';
import { Kind, parse, TypeInfo, visit, visitWithTypeInfo, type GraphQLSchema } from 'graphql';
import type { AuthService, Caller } from '../core/auth/auth.service';
import { bearerToken } from '../core/auth/tokens';
import { isRunsVersioned } from '../core/history/runs-versioned';
import type { CondenseContext } from './context';
import { QUERY_LIMITS } from './limits';

/** Most answers kept, and most bytes in all; the least recently used go first. */
export const RESPONSE_CACHE_ENTRIES = 2_000;
export const RESPONSE_CACHE_BYTES = 64 * 2 ** 20;
/** Query texts whose cacheability is remembered. */
const VERDICT_ENTRIES = 1_000;
/** Longer query texts or variables are not cached (they would make keys as large as answers). */
const QUERY_MAX_CHARS = 20_000;
const VARIABLES_MAX_CHARS = 10_000;

/** A request computing an answer the cache will keep: the key and the runs version it was read at. */
export interface ResponseCacheSlot {
  key: string;
  version: string;
  /** Keeps `body` (undefined: nothing to keep, e.g. the answer had errors) and hands it to requests waiting for it. Only the first call counts. */
  finish(body: string | undefined): void;
}

interface Flight {
  version: string;
  answer: Promise<string | undefined>;
}

interface Entry {
  version: bigint;
  body: string;
}

/**
 * True when every operation in the document is a query and every field it selects (fragments
 * included) is marked RUNS_VERSIONED, on itself or on its type, or is __typename: its answer then
 * depends only on the caller's team, the variables and the runs version.
 */
export function selectsOnlyRunsVersioned(schema: GraphQLSchema, query: string): boolean {
  let document;
  try {
    document = parse(query, { maxTokens: QUERY_LIMITS.maxTokens });
  } catch {
    return false;
  }
  if (!document.definitions.some((d) => d.kind === Kind.OPERATION_DEFINITION)) return false;
  let cacheable = true;
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      OperationDefinition(node) {
        if (node.operation !== 'query') cacheable = false;
      },
      Field(node) {
        if (node.name.value === '__typename') return;
        const parent = typeInfo.getParentType();
        const field = typeInfo.getFieldDef();
        if (!field || !parent || !(isRunsVersioned(field.extensions) || isRunsVersioned(parent.extensions))) cacheable = false;
      },
    }),
  );
  return cacheable;
}

/**
 * Whole answers of queries that read only runs-versioned fields (run history, comparisons,
 * leaderboards), kept per query text, operation name, variables and caller's team under the runs
 * version read with the caller's token. A request whose answer is here is served with one database
 * round trip (the token lookup, which also reads the version) and without running GraphQL; any write
 * the answer depends on bumps the version in its own transaction, so a read after that commit misses
 * and computes afresh. Concurrent requests for an answer being computed wait for that one
 * computation. Answers with errors are never kept.
 */
export class ResponseCache {
  private readonly entries = new Map<string, Entry>();
  private readonly verdicts = new Map<string, boolean>();
  /** Answers being computed, by key: concurrent requests for the same key and version wait for one. */
  private readonly flights = new Map<string, Flight>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;
  private shared = 0;

  constructor(readonly schema: GraphQLSchema) {}

  /** Whether answers to this query text may be cached (remembered per text). */
  cacheable(query: string): boolean {
    if (query.length > QUERY_MAX_CHARS) return false;
    let verdict = this.verdicts.get(query);
    if (verdict === undefined) {
      verdict = selectsOnlyRunsVersioned(this.schema, query);
      if (this.verdicts.size >= VERDICT_ENTRIES) this.verdicts.delete(this.verdicts.keys().next().value!);
      this.verdicts.set(query, verdict);
    }
    return verdict;
  }

  /** The answer kept for `key` at `version`, if any. */
  lookup(key: string, version: string): string | undefined {
    const entry = this.entries.get(key);
    if (!entry || entry.version !== BigInt(version)) return undefined;
    this.hits++;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.body;
  }

  /** The answer another request is computing for `key` at `version`, if one is (undefined once it settles without one to keep). */
  async waitFor(key: string, version: string): Promise<string | undefined> {
    const flight = this.flights.get(key);
    if (!flight || flight.version !== version) return undefined;
    const body = await flight.answer;
    if (body !== undefined) this.shared++;
    return body;
  }

  /** Marks the caller as computing the answer for `key` at `version`; it must finish() the slot. */
  begin(key: string, version: string): ResponseCacheSlot {
    this.misses++;
    let settle!: (body: string | undefined) => void;
    const flight: Flight = { version, answer: new Promise((resolve) => (settle = resolve)) };
    this.flights.set(key, flight);
    let finished = false;
    return {
      key,
      version,
      finish: (body) => {
        if (finished) return;
        finished = true;
        if (body !== undefined) this.store(key, BigInt(version), body);
        if (this.flights.get(key) === flight) this.flights.delete(key);
        settle(body);
      },
    };
  }

  stats(): { entries: number; bytes: number; hits: number; misses: number; shared: number } {
    return { entries: this.entries.size, bytes: this.bytes, hits: this.hits, misses: this.misses, shared: this.shared };
  }

  private store(key: string, version: bigint, body: string): void {
    const old = this.entries.get(key);
    // A slow request that read an older version does not replace a newer answer.
    if (old && old.version > version) return;
    if (body.length > RESPONSE_CACHE_BYTES / 16) return;
    if (old) this.forget(key, old);
    this.entries.set(key, { version, body });
    this.bytes += key.length + body.length;
    while (this.entries.size > RESPONSE_CACHE_ENTRIES || this.bytes > RESPONSE_CACHE_BYTES) {
      const oldest = this.entries.keys().next().value!;
      this.forget(oldest, this.entries.get(oldest)!);
    }
  }

  private forget(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= key.length + entry.body.length;
  }
}

const CALLER = Symbol('condense.caller');
const SLOT = Symbol('condense.responseCacheSlot');
type CacheAwareRequest = Request & { [CALLER]?: Caller; [SLOT]?: ResponseCacheSlot };

/** The caller the response cache already authenticated for this request, so the context need not ask again. */
export function authenticatedCaller(req: Request): Caller | undefined {
  return (req as CacheAwareRequest)[CALLER];
}

export function responseCacheSlot(req: Request): ResponseCacheSlot | undefined {
  return (req as CacheAwareRequest)[SLOT];
}

/**
 * Express middleware in front of Apollo: for a cacheable query from a valid token, answers from the
 * cache or marks the request so that Apollo's answer is kept (responseCachePlugin). Anything else
 * (no token, a bad one, mutations, fields outside the runs version, clients asking for
 * application/graphql-response+json) goes on to Apollo untouched.
 */
export function serveCachedResponses(cache: ResponseCache, auth: AuthService): RequestHandler {
  return async (req, res, next) => {
    const body = req.body as { query?: unknown; operationName?: unknown; variables?: unknown } | undefined;
    const query = body?.query;
    if (req.method !== 'POST' || typeof query !== 'string' || !acceptsPlainJson(req) || !cache.cacheable(query)) return next();
    const token = bearerToken(req.headers.authorization);
    if (token === undefined) return next();
    let caller: Caller;
    try {
      caller = await auth.authenticate(token);
    } catch {
      return next(); // the context function reports it
    }
    (req as CacheAwareRequest)[CALLER] = caller;
    if (caller.runsVersion === undefined) return next();
    const operationName = typeof body!.operationName === 'string' ? body!.operationName : '';
    const variables = JSON.stringify(body!.variables ?? null);
    if (variables.length > VARIABLES_MAX_CHARS) return next();
    const key = `${caller.team.id}\u0000${operationName}\u0000${variables}\u0000${query}`;
    const kept = cache.lookup(key, caller.runsVersion) ?? (await cache.waitFor(key, caller.runsVersion));
    if (kept !== undefined) {
      res.status(200).type('application/json; charset=utf-8').send(kept);
      return;
    }
    const slot = cache.begin(key, caller.runsVersion);
    // Requests waiting for this answer are released however this one ends (refused, failed, client gone).
    res.once('close', () => slot.finish(undefined));
    (req as CacheAwareRequest)[SLOT] = slot;
    next();
  };
}

/** Keeps answers of requests serveCachedResponses marked, unless they carry errors, and releases requests waiting for them. */
export function responseCachePlugin(cache: ResponseCache): ApolloServerPlugin<CondenseContext> {
  return {
    async requestDidStart({ contextValue }) {
      const slot = contextValue.responseCacheSlot;
      if (!slot) return;
      return {
        async willSendResponse({ response }) {
          const { body, http } = response;
          if (body.kind !== 'single' || body.singleResult.errors || (http.status ?? 200) !== 200) return slot.finish(undefined);
          // The same text Apollo sends (runHttpQuery's prettyJSONStringify, fields in its order).
          const { data, extensions } = body.singleResult;
          slot.finish(JSON.stringify({ data, extensions }) + '\n');
        },
      };
    },
  };
}

function acceptsPlainJson(req: Request): boolean {
  const accept = req.headers.accept;
  return accept === undefined || !accept.includes('application/graphql-response+json');
}
