import { injectable } from 'tsyringe';
import { DataSource } from 'typeorm';

/** Most results one server process keeps; the least recently used go first. */
export const VERSIONED_CACHE_ENTRIES = 2_000;

interface Entry {
  version: string;
  value: Promise<unknown>;
}

/**
 * Results of the history, comparison and leaderboard queries, kept per key (which includes the
 * caller's team) under the runs version that database triggers bump on every change they depend on
 * (migration 1764300000000). A read first fetches the version, then returns the result computed at
 * that version or later, or computes it; concurrent requests for the same key and version share one
 * computation. Data written and committed before a read is always seen by it: the version read
 * after the commit is newer than the one the stale entry was stored under.
 */
@injectable()
export class VersionedCache {
  private readonly entries = new Map<string, Entry>();
  private hits = 0;
  private misses = 0;

  constructor(private readonly dataSource: DataSource) {}

  /** The current runs version (one primary-key read). */
  async runsVersion(): Promise<string> {
    const rows: Array<{ version: string }> = await this.dataSource.query(`SELECT version::text AS version FROM change_counters WHERE name = 'runs'`);
    return rows[0]?.version ?? '0';
  }

  /** `knownVersion`: a runs version read earlier in the same request (Caller.runsVersion), which saves a round trip. */
  async get<T>(key: string, compute: () => Promise<T>, knownVersion?: string): Promise<T> {
    const version = knownVersion ?? (await this.runsVersion());
    const entry = this.entries.get(key);
    if (entry && entry.version === version) {
      this.hits++;
      // Refresh its place in the LRU order (Map keeps insertion order).
      this.entries.delete(key);
      this.entries.set(key, entry);
      return entry.value as Promise<T>;
    }
    this.misses++;
    const value = compute();
    this.entries.delete(key);
    this.entries.set(key, { version, value });
    // A failed computation is not kept: the next request tries again.
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    while (this.entries.size > VERSIONED_CACHE_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    return value;
  }

  /**
   * The rows of a read-only query, cached by its text and parameters (which must include whatever
   * decides what the caller may see, such as its team id). `before` runs ahead of the query on a miss;
   * `version` as for get.
   */
  query<T>(sql: string, params: unknown[], options: { version?: string; before?: () => Promise<void> } = {}): Promise<T[]> {
    return this.get(
      `${sql}\u0000${JSON.stringify(params)}`,
      async () => {
        await options.before?.();
        return (await this.dataSource.query(sql, params)) as T[];
      },
      options.version,
    );
  }

  stats(): { entries: number; hits: number; misses: number } {
    return { entries: this.entries.size, hits: this.hits, misses: this.misses };
  }
}
