import type { DataSource } from 'typeorm';
import type { ColumnMetadata } from 'typeorm/metadata/ColumnMetadata';
import { preparedQuery } from '../db/prepared-query';
import { Run } from '../records/run.entity';

/**
 * Reads runs by id for the history, comparison and leaderboard answers, without TypeORM's query
 * builder: the SELECT list is built once from the entity's metadata and each row is hydrated with
 * the driver's own conversions (dates, bigint seed, jsonb), so the result equals `findBy`'s. On a
 * busy server building the query each time cost more than running it.
 */
export class RunLoader {
  private readonly columns: ColumnMetadata[];
  private readonly selectList: string;

  constructor(private readonly dataSource: DataSource) {
    this.columns = dataSource.getMetadata(Run).columns.filter((c) => c.isSelect);
    this.selectList = this.columns.map((c) => `r."${c.databaseName}"`).join(', ');
  }

  /** The runs with these ids (any order; missing ids are left out). */
  async byIds(ids: string[]): Promise<Run[]> {
    if (ids.length === 0) return [];
    const rows = await preparedQuery<Record<string, unknown>>(this.dataSource, 'condense-runs-by-ids', `SELECT ${this.selectList} FROM runs r WHERE r.id = ANY($1::uuid[])`, [ids]);
    return rows.map((row) => this.hydrate(row));
  }

  /** The runs with these ids, each with its project's team and whether that project is shared for comparison. */
  async byIdsWithAccess(ids: string[]): Promise<Array<{ run: Run; teamId: string; shared: boolean }>> {
    if (ids.length === 0) return [];
    const rows = await preparedQuery<Record<string, unknown> & { access_team_id: string; access_shared: boolean }>(
      this.dataSource,
      'condense-runs-by-ids-with-access',
      `SELECT ${this.selectList}, p.team_id AS access_team_id, p.shared_for_comparison AS access_shared
         FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = ANY($1::uuid[])`,
      [ids],
    );
    return rows.map((row) => ({ run: this.hydrate(row), teamId: row.access_team_id, shared: row.access_shared }));
  }

  private hydrate(row: Record<string, unknown>): Run {
    const run = this.dataSource.getMetadata(Run).create() as Run;
    for (const column of this.columns) column.setEntityValue(run, this.dataSource.driver.prepareHydratedValue(row[column.databaseName], column));
    return run;
  }
}
