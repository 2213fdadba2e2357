import { randomUUID } from 'node:crypto';
import type { GraphQLFormattedError } from 'graphql';
import { GraphQLError } from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';
import { EntityNotFoundError } from 'typeorm';
import { ZodError } from 'zod';
import type { Logger } from '../core/logging/logger';
import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, UnauthenticatedError } from '../core/errors';
import { ModelFormatError } from '../core/models/model-files';
import { ModelSpecError } from '../core/models/model-spec';
import { PluginInputError } from '../core/plugins/contracts';
import { PluginConfigError, UnknownPluginError } from '../core/plugins/registry';
import { PipelineValidationError } from '../core/pipelines/pipeline-validation';

export type ErrorCode = 'BAD_USER_INPUT' | 'NOT_FOUND' | 'FORBIDDEN' | 'UNAUTHENTICATED' | 'CONFLICT' | 'INTERNAL_SERVER_ERROR';

/**
 * The one place where errors of the domain become GraphQL error codes. Anything not listed is a bug
 * or an outage: callers get a reference, the log gets the details.
 */
const DOMAIN_ERRORS: Array<[new (...args: any[]) => Error, ErrorCode]> = [
  [UnauthenticatedError, 'UNAUTHENTICATED'],
  [ForbiddenError, 'FORBIDDEN'],
  [NotFoundError, 'NOT_FOUND'],
  [EntityNotFoundError, 'NOT_FOUND'],
  [ConflictError, 'CONFLICT'],
  // InvalidInputError covers DatasetError and its subclasses.
  [InvalidInputError, 'BAD_USER_INPUT'],
  [ModelFormatError, 'BAD_USER_INPUT'],
  [ModelSpecError, 'BAD_USER_INPUT'],
  [PluginInputError, 'BAD_USER_INPUT'],
  [PluginConfigError, 'BAD_USER_INPUT'],
  [UnknownPluginError, 'BAD_USER_INPUT'],
  [PipelineValidationError, 'BAD_USER_INPUT'],
];

function zodMessage(error: ZodError): string {
  return error.issues.map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

/** The code a thrown domain error maps to, or undefined for unexpected errors. */
export function codeOf(error: unknown): ErrorCode | undefined {
  if (error instanceof ZodError) return 'BAD_USER_INPUT';
  for (const [cls, code] of DOMAIN_ERRORS) if (error instanceof cls) return code;
  return undefined;
}

/** Extra machine-readable details some domain errors carry. */
function detailsOf(error: unknown): Record<string, unknown> {
  if (error instanceof UnknownPluginError) return { plugin: error.plugin, knownPlugins: error.known };
  if (error instanceof PluginConfigError) return { plugin: error.plugin, issues: error.issues };
  if (error instanceof PipelineValidationError) return { problems: error.problems };
  if (error instanceof ZodError) return { issues: error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) };
  return {};
}

/** Apollo's `formatError`: maps domain errors, hides internals, never sends stack traces. */
export function createFormatError(log: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    let original = unwrapResolverError(error);
    if (original instanceof GraphQLError) {
      const inner = original.originalError;
      // Apollo wraps plain errors it could not classify (a failing context function, say): judge the inner one.
      if (formatted.extensions?.code === 'INTERNAL_SERVER_ERROR' && inner && !(inner instanceof GraphQLError)) {
        original = inner;
      } else {
        // Raised as GraphQLErrors (by Apollo, graphql-js, or our own context): they already carry their code.
        const { stacktrace: _drop, ...extensions } = (formatted.extensions ?? {}) as Record<string, unknown>;
        return { ...formatted, extensions };
      }
    }
    const code = codeOf(original);
    if (code) {
      const message = original instanceof ZodError ? `invalid input: ${zodMessage(original)}` : (original as Error).message;
      return { message, locations: formatted.locations, path: formatted.path, extensions: { code, ...detailsOf(original) } };
    }
    const reference = randomUUID();
    log.error({ err: original, reference, path: formatted.path }, 'unexpected error while answering a GraphQL request');
    return {
      message: `internal error (reference ${reference}); the server log has the details`,
      locations: formatted.locations,
      path: formatted.path,
      extensions: { code: 'INTERNAL_SERVER_ERROR', reference },
    };
  };
}
