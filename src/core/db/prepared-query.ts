import type { Pool, QueryResultRow } from 'pg';
import type { DataSource } from 'typeorm';

/**
 * Runs a read-only query as a named prepared statement on the data source's pg pool: each pooled
 * connection parses and plans it once, then only binds and executes. For the statements every
 * API request runs (the token lookup, the runs of an answer), where planning cost as much as
 * executing. `name` must be unique per statement text. Rows come back as pg returns them (the same
 * type conversions as DataSource.query).
 */
export async function preparedQuery<R extends QueryResultRow>(dataSource: DataSource, name: string, text: string, values: unknown[]): Promise<R[]> {
  const pool = (dataSource.driver as unknown as { master?: Pool }).master;
  if (!pool) return dataSource.query(text, values);
  const result = await pool.query<R>({ name, text, values });
  return result.rows;
}
