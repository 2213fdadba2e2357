/** A GraphQL input object as a plain object without the fields the client left out or set to null. */
export function definedFields<T extends object>(input: T | null | undefined): { [K in keyof T]?: NonNullable<T[K]> } {
  if (!input) return {};
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== null && v !== undefined)) as { [K in keyof T]?: NonNullable<T[K]> };
}
