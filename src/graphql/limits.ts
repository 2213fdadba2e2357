import type { ApolloServerPlugin } from '@apollo/server';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { parse, validate, type GraphQLSchema } from 'graphql';
import {
  GraphQLError,
  Kind,
  type FragmentDefinitionNode,
  type GraphQLFormattedError,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationRule,
} from 'graphql';

/**
 * Limits on what one request may ask (the MLflow CVE-2025-0453 class: deep, alias-flooded or huge
 * queries, batches and oversized bodies that tie a GraphQL server up). They are checked before
 * anything executes, by graphql-js validation rules and express middleware, so a refused request
 * costs a parse and a walk of its own document.
 */
export const QUERY_LIMITS = {
  /** Nested selection levels below the operation (introspection's own fields excepted). */
  maxDepth: 10,
  /** Aliased fields written in the document. */
  maxAliases: 30,
  /** Fields after expanding fragments (a cost measure: each field is at least one resolver call). */
  maxFields: 500,
  /** Lexical tokens in the document (graphql-js stops parsing beyond). */
  maxTokens: 10_000,
  /** JSON body of /graphql. */
  bodyLimit: '1mb',
  /** JSON body of /graphql/upload, which accepts only UPLOAD_OPERATIONS. */
  uploadBodyLimit: '64mb',
} as const;

/** Root mutation fields allowed (alone) at the upload endpoint. */
export const UPLOAD_OPERATIONS = new Set(['uploadModel']);
export const UPLOAD_PATH = '/graphql/upload';
/** Set by the server on requests that came in at UPLOAD_PATH (overwritten on every request, so clients cannot forge it). */
export const ENDPOINT_HEADER = 'x-condense-endpoint';

export type LimitCode = 'QUERY_TOO_DEEP' | 'TOO_MANY_ALIASES' | 'QUERY_TOO_COSTLY';

function limitError(code: LimitCode, message: string, node: OperationDefinitionNode, limit: number): GraphQLError {
  // Apollo relabels validation errors GRAPHQL_VALIDATION_FAILED; limitsFormatError restores `limit` as the code.
  return new GraphQLError(message, { nodes: [node], extensions: { limit: code, max: limit } });
}

interface Measure {
  depth: number;
  fields: number;
  /** Selections visited, fragment spreads included: bounds the walk itself. */
  work: number;
}

const INTROSPECTION_ROOTS = new Set(['__schema', '__type']);

/**
 * Depth and field count of an operation with fragments expanded. Stops counting once past
 * `budget` visits, so a fragment bomb cannot make the walk itself expensive.
 */
export function measureOperation(operation: OperationDefinitionNode, fragments: Map<string, FragmentDefinitionNode>, budget: number): Measure {
  const measure: Measure = { depth: 0, fields: 0, work: 0 };
  const walk = (set: SelectionSetNode, depth: number, countDepth: boolean, path: Set<string>) => {
    for (const selection of set.selections) {
      if (++measure.work > budget) return;
      if (selection.kind === Kind.FIELD) {
        measure.fields++;
        const introspection = INTROSPECTION_ROOTS.has(selection.name.value);
        const counted = countDepth && !introspection;
        if (counted) measure.depth = Math.max(measure.depth, depth + 1);
        if (selection.selectionSet) walk(selection.selectionSet, depth + 1, counted, path);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        walk(selection.selectionSet, depth, countDepth, path);
      } else {
        const name = selection.name.value;
        const fragment = fragments.get(name);
        // Unknown or cyclic fragments are reported by graphql-js' own rules.
        if (!fragment || path.has(name)) continue;
        walk(fragment.selectionSet, depth, countDepth, new Set([...path, name]));
      }
    }
  };
  walk(operation.selectionSet, 0, true, new Set());
  return measure;
}

function fragmentsOf(context: Parameters<ValidationRule>[0]): Map<string, FragmentDefinitionNode> {
  const map = new Map<string, FragmentDefinitionNode>();
  for (const def of context.getDocument().definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) map.set(def.name.value, def);
  return map;
}

/** Refuses operations nested deeper than `maxDepth` or selecting more than `maxFields` fields. */
export function depthAndCostRule(maxDepth: number = QUERY_LIMITS.maxDepth, maxFields: number = QUERY_LIMITS.maxFields): ValidationRule {
  return (context) => ({
    OperationDefinition(node) {
      const m = measureOperation(node, fragmentsOf(context), maxFields * 4);
      if (m.depth > maxDepth) {
        context.reportError(limitError('QUERY_TOO_DEEP', `query is nested ${m.depth} levels deep; at most ${maxDepth} are allowed`, node, maxDepth));
      }
      if (m.fields > maxFields || m.work > maxFields * 4) {
        context.reportError(
          limitError('QUERY_TOO_COSTLY', `query selects more than ${maxFields} fields once fragments are expanded; split it into smaller queries`, node, maxFields),
        );
      }
    },
  });
}

/** Refuses documents with more than `maxAliases` aliased fields. */
export function aliasLimitRule(maxAliases: number = QUERY_LIMITS.maxAliases): ValidationRule {
  return (context) => {
    let aliases = 0;
    let reported = false;
    return {
      Field(node) {
        if (node.alias) aliases++;
        if (aliases > maxAliases && !reported) {
          reported = true;
          const operation = context.getDocument().definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION) as OperationDefinitionNode;
          context.reportError(limitError('TOO_MANY_ALIASES', `query uses more than ${maxAliases} aliases; at most ${maxAliases} are allowed`, operation, maxAliases));
        }
      },
    };
  };
}

export const LIMIT_RULES: ValidationRule[] = [depthAndCostRule(), aliasLimitRule()];

/** Wraps Apollo's formatError: a refused limit keeps its own code (QUERY_TOO_DEEP...) instead of GRAPHQL_VALIDATION_FAILED. */
export function limitsFormatError(base: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const out = base(formatted, error);
    const limit = out.extensions?.limit;
    return typeof limit === 'string' ? { ...out, extensions: { ...out.extensions, code: limit } } : out;
  };
}

function refusal(status: number, code: string, message: string) {
  return { status, body: { errors: [{ message, extensions: { code } }] } };
}

/**
 * Runs the limit rules before authentication and execution, so a refused query costs no database
 * round trip (the token lookup) and does not queue behind other work. Unparseable queries pass on
 * to Apollo, which reports the syntax error.
 */
export function refuseOverLimitQueries(schema: GraphQLSchema): RequestHandler {
  // Verdicts by query text: clients send the same few documents again and again, and parsing plus
  // validating each costs more than the rest of a cached request. null: within the limits.
  const verdicts = new Map<string, LimitRefusal[] | null>();
  return (req, res, next) => {
    const query = (req.body as { query?: unknown } | undefined)?.query;
    if (typeof query !== 'string') return next();
    let refusals = verdicts.get(query);
    if (refusals === undefined) {
      let document;
      try {
        document = parse(query, { maxTokens: QUERY_LIMITS.maxTokens });
      } catch {
        return next();
      }
      const errors = validate(schema, document, LIMIT_RULES);
      refusals = errors.length === 0 ? null : errors.map((e) => ({ message: e.message, locations: e.locations, extensions: { code: e.extensions.limit, max: e.extensions.max } }));
      if (query.length <= VERDICT_QUERY_MAX_CHARS) {
        if (verdicts.size >= VERDICT_CACHE_ENTRIES) verdicts.delete(verdicts.keys().next().value!);
        verdicts.set(query, refusals);
      }
    }
    if (refusals === null) return next();
    res.status(400).json({ errors: refusals });
  };
}

interface LimitRefusal {
  message: string;
  locations: GraphQLError['locations'];
  extensions: { code: unknown; max: unknown };
}

/** How many query texts' limit verdicts are remembered, and the longest text remembered. */
const VERDICT_CACHE_ENTRIES = 1_000;
const VERDICT_QUERY_MAX_CHARS = 20_000;

/** Array bodies (batched operations) are refused: one operation per request. */
export const refuseBatches: RequestHandler = (req, res, next) => {
  if (Array.isArray(req.body)) {
    const r = refusal(400, 'BATCHING_NOT_SUPPORTED', 'batched operations are not accepted; send one operation per request');
    res.status(r.status).json(r.body);
    return;
  }
  next();
};

/** Marks which endpoint a request came in at, overwriting whatever the client sent. */
export function markEndpoint(endpoint: 'graphql' | 'upload'): RequestHandler {
  return (req, _res, next) => {
    req.headers[ENDPOINT_HEADER] = endpoint;
    next();
  };
}

/** JSON errors for bodies the JSON parser refused (too large, malformed) instead of express' HTML page. */
export const bodyErrorHandler: ErrorRequestHandler = (error: { type?: string; status?: number; limit?: number }, _req, res, next) => {
  if (error?.type === 'entity.too.large') {
    const r = refusal(
      413,
      'PAYLOAD_TOO_LARGE',
      `request body is larger than ${QUERY_LIMITS.bodyLimit}; model uploads (uploadModel) go to ${UPLOAD_PATH}, which accepts up to ${QUERY_LIMITS.uploadBodyLimit}`,
    );
    res.status(r.status).json(r.body);
    return;
  }
  if (error?.type === 'entity.parse.failed') {
    const r = refusal(400, 'BAD_REQUEST', 'request body is not valid JSON');
    res.status(r.status).json(r.body);
    return;
  }
  next(error);
};

/** At the upload endpoint, only a mutation whose root fields are all upload operations may run. */
export const uploadEndpointPlugin: ApolloServerPlugin = {
  async requestDidStart(requestContext) {
    if (requestContext.request.http?.headers.get(ENDPOINT_HEADER) !== 'upload') return;
    return {
      async didResolveOperation({ operation }) {
        const roots = operation?.selectionSet.selections ?? [];
        const allowed =
          operation?.operation === 'mutation' &&
          roots.length > 0 &&
          roots.every((s) => s.kind === Kind.FIELD && (UPLOAD_OPERATIONS.has(s.name.value) || s.name.value === '__typename'));
        if (!allowed) {
          throw new GraphQLError(`${UPLOAD_PATH} accepts only the ${[...UPLOAD_OPERATIONS].join(', ')} mutation; send other operations to /graphql`, {
            extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
          });
        }
      },
    };
  },
};
