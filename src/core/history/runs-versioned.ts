/**
 * Marks a GraphQL type (all its fields) or a single field whose value changes only together with
 * the runs version: it is read from run columns that migration 1764300000000's triggers watch
 * (status, final metrics, signature, project, pipeline, creation time, seed), from columns that never
 * change after a run is created, or from results VersionedCache keeps under that version. The API's
 * response cache serves a query from memory only when every field it selects is marked.
 *
 *   @Extensions(RUNS_VERSIONED)
 */
export const RUNS_VERSIONED = { runsVersioned: true } as const;

export function isRunsVersioned(extensions: Readonly<Record<string, unknown>> | null | undefined): boolean {
  return extensions?.runsVersioned === true;
}
