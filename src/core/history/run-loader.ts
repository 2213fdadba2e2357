import type { DataSource } from 'typeorm';
import { preparedQuery } from '../db/prepared-query';
import { Run } from '../records/run.entity';

/**
 * Reads runs by id for the history, comparison and leaderboard answers, without TypeORM's query
 * builder: the SELECT list is built once from the entity's metadata and each row is hydrated with
 * the driver's own conversions (dates, bigint seed, jsonb), so the result equals `findBy`'s. On a
 * busy server building the query each time cost more than running it. `extra` columns (SQL over
 * `r` and `p`, the run's project) come back beside each run.
 */
export class RunLoader {
  private readonly selectList: string;

  constructor(private readonly dataSource: DataSource) {
    const columns = dataSource.getMetadata(Run).columns.filter((c) => c.isSelect);
    this.selectList = columns.map((c) => `r."${c.databaseName}"`).join(', ');
  }

  /** The runs with these ids (any order; missing ids are left out). */
  async byIds(ids: string[]): Promise<Run[]> {
    if (ids.length === 0) return [];
    const rows = await preparedQuery<Record<string, unknown>>(this.dataSource, 'condense-runs-by-ids', `SELECT ${this.selectList} FROM runs r WHERE r.id = ANY($1::uuid[])`, [ids]);
    return rows.map((row) => this.hydrate(row));
  }

  /** The runs with these ids and, for each, the values of `extra` (alias → SQL expression over r and p). */
  async byIdsWithProject<E extends Record<string, unknown>>(ids: string[], extra: Record<keyof E & string, string>): Promise<Array<{ run: Run; extra: E }>> {
    if (ids.length === 0) return [];
    const aliases = Object.keys(extra);
    const extraList = aliases.map((a, i) => `${extra[a as keyof E & string]} AS "x${i}"`).join(', ');
    const rows: Array<Record<string, unknown>> = await this.dataSource.query(
      `SELECT ${this.selectList}, ${extraList} FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = ANY($1::uuid[])`,
      [ids],
    );
    return rows.map((row) => ({ run: this.hydrate(row), extra: Object.fromEntries(aliases.map((a, i) => [a, row[`x${i}`]])) as E }));
  }

  private hydrate(row: Record<string, unknown>): Run {
    const metadata = this.dataSource.getMetadata(Run);
    const run = metadata.create() as Run;
    for (const column of metadata.columns) {
      if (!column.isSelect) continue;
      column.setEntityValue(run, this.dataSource.driver.prepareHydratedValue(row[column.databaseName], column));
    }
    return run;
  }
}
