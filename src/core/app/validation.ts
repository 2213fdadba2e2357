import { z } from 'zod';
import { InvalidInputError } from '../errors';

const NAME_SCHEMA = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(100, 'must be at most 100 characters')
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters');

/** Validates a human-chosen name (team, member, project, model, dataset...); returns it trimmed. */
export function parseName(what: string, value: string): string {
  const parsed = NAME_SCHEMA.safeParse(value);
  if (!parsed.success) throw new InvalidInputError(`${what} ${parsed.error.issues[0].message} (got ${JSON.stringify(value)})`);
  return parsed.data;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Checks that an id is a UUID before it reaches Postgres (which would answer with a cryptic cast error). */
export function parseId(what: string, value: string): string {
  if (!UUID_PATTERN.test(value)) throw new InvalidInputError(`${what} must be a UUID (got ${JSON.stringify(value)})`);
  return value.toLowerCase();
}
