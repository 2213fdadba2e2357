/** Postgres SQLSTATE of a unique-constraint violation. */
const UNIQUE_VIOLATION = '23505';

/** True when `error` is a unique violation (optionally of the named constraint), as raised by pg through TypeORM. */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const e = error as { code?: string; constraint?: string; driverError?: { code?: string; constraint?: string } };
  const code = e?.driverError?.code ?? e?.code;
  const name = e?.driverError?.constraint ?? e?.constraint;
  return code === UNIQUE_VIOLATION && (constraint === undefined || name === constraint);
}
