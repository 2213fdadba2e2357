import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import pino from 'pino';
import { z } from 'zod';
import { ConflictError, ForbiddenError, NotFoundError } from '../../src/core/errors';
import { DatasetSourceError } from '../../src/core/data/errors';
import { ModelFormatError } from '../../src/core/models/model-files';
import { PluginConfigError, UnknownPluginError } from '../../src/core/plugins/registry';
import { createFormatError } from '../../src/graphql/error-mapper';

/** Collects what the mapper logs, to check that details go to the log and not to the caller. */
function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'error' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { format: createFormatError(log), lines };
}

/** What graphql-js does with an error thrown in a resolver: a located GraphQLError wrapping it. */
function fromResolver(error: Error): [GraphQLFormattedError, unknown] {
  const located = new GraphQLError(error.message, { path: ['field'], originalError: error });
  return [{ message: error.message, path: ['field'], extensions: { code: 'INTERNAL_SERVER_ERROR', stacktrace: ['at somewhere'] } }, located];
}

describe('createFormatError', () => {
  it.each([
    [new NotFoundError('no project with id x'), 'NOT_FOUND'],
    [new ForbiddenError('project x belongs to another team'), 'FORBIDDEN'],
    [new ConflictError('name taken'), 'CONFLICT'],
    [new DatasetSourceError('image folder /nope does not exist'), 'BAD_USER_INPUT'],
    [new ModelFormatError('model.json is not valid JSON'), 'BAD_USER_INPUT'],
  ])('maps %p to its code and keeps the message', (error, code) => {
    const { format } = capture();
    const out = format(...fromResolver(error));
    expect(out).toEqual({ message: error.message, path: ['field'], locations: undefined, extensions: { code } });
  });

  it('adds machine-readable details for plugin errors and zod issues', () => {
    const { format } = capture();
    const unknown = format(...fromResolver(new UnknownPluginError('deep-magic', ['kd', 'noise'])));
    expect(unknown.extensions).toEqual({ code: 'BAD_USER_INPUT', plugin: 'deep-magic', knownPlugins: ['kd', 'noise'] });
    const config = format(...fromResolver(new PluginConfigError('kd', [{ path: 'temperature', message: 'Too small' }])));
    expect(config.extensions).toMatchObject({ code: 'BAD_USER_INPUT', issues: [{ path: 'temperature', message: 'Too small' }] });
    const zod = z.strictObject({ epochs: z.number().int().min(1) }).safeParse({ epochs: 0 });
    const zodOut = format(...fromResolver(zod.error!));
    expect(zodOut.extensions?.code).toBe('BAD_USER_INPUT');
    expect(zodOut.message).toMatch(/^invalid input: epochs: /);
  });

  it('hides unexpected errors behind a reference that the log also carries, without stack traces', () => {
    const { format, lines } = capture();
    const out = format(...fromResolver(new TypeError("Cannot read properties of undefined (reading 'id')")));
    expect(out.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    expect(out.message).not.toContain('Cannot read');
    expect(out.extensions).not.toHaveProperty('stacktrace');
    expect(lines).toHaveLength(1);
    expect(lines[0].reference).toBe(out.extensions?.reference);
    expect(JSON.stringify(lines[0])).toContain('Cannot read properties');
  });

  it('hides a failing context function (wrapped by Apollo) the same way', () => {
    const { format, lines } = capture();
    const inner = new Error('connect ECONNREFUSED 127.0.0.1:5432');
    const wrapped = new GraphQLError(`Context creation failed: ${inner.message}`, { originalError: inner });
    const out = format({ message: wrapped.message, extensions: { code: 'INTERNAL_SERVER_ERROR' } }, wrapped);
    expect(out.message).not.toContain('ECONNREFUSED');
    expect(lines).toHaveLength(1);
  });

  it('passes through errors that already have a code, minus stack traces', () => {
    const { format, lines } = capture();
    const apollo = new GraphQLError('Variable "$id" of required type "ID!" was not provided.', { extensions: { code: 'BAD_USER_INPUT' } });
    const out = format({ message: apollo.message, extensions: { code: 'BAD_USER_INPUT', stacktrace: ['GraphQLError: ...'] } }, apollo);
    expect(out).toEqual({ message: apollo.message, extensions: { code: 'BAD_USER_INPUT' } });
    expect(lines).toHaveLength(0);
  });
});
