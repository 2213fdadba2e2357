import fs from 'node:fs';
import { injectable } from 'tsyringe';
import { DataSource } from 'typeorm';
import { ArtifactStore } from '../artifacts/artifact-store';
import type { Caller } from '../auth/auth.service';
import { ForbiddenError, NotFoundError } from '../errors';
import { Artifact } from '../records/artifact.entity';

/** Where the API server serves an artifact's bytes (relative to its origin); see src/graphql/artifact-routes.ts. */
export function artifactUrl(id: string): string {
  return `/artifacts/${id}`;
}

/** Artifacts served over HTTP: pictures only (grids of synthesized or translated images). */
export const SERVED_KINDS = new Set(['image']);

export interface RunImage {
  id: string;
  url: string;
  stageIndex: number | null;
  mediaType: string;
  bytes: number;
}

export interface ReadableArtifact {
  artifact: Artifact;
  path: string;
}

/**
 * Image artifacts of runs and access to their bytes. An artifact is readable by a caller when the
 * run it came from is in the caller's team's project or in a project shared for comparison.
 * RunService records an image's run but not its stage; the stage is filled in here on read from
 * the stage whose [started_at, finished_at] holds the artifact's creation time.
 */
@injectable()
export class ArtifactAccessService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly store: ArtifactStore,
  ) {}

  async imagesOfRun(runId: string, stageIndex?: number): Promise<RunImage[]> {
    await this.dataSource.query(
      `UPDATE artifacts a SET stage_index = s.index
         FROM run_stages s
        WHERE a.run_id = $1 AND a.kind = 'image' AND a.stage_index IS NULL
          AND s.run_id = a.run_id AND s.started_at IS NOT NULL
          AND a.created_at >= s.started_at AND a.created_at <= coalesce(s.finished_at, now())`,
      [runId],
    );
    const rows: Array<{ id: string; stage_index: number | null; media_type: string; bytes: number }> = await this.dataSource.query(
      `SELECT id, stage_index, media_type, bytes FROM artifacts
        WHERE run_id = $1 AND kind = 'image' ${stageIndex === undefined ? '' : 'AND stage_index = $2'}
        ORDER BY created_at, id LIMIT 1000`,
      stageIndex === undefined ? [runId] : [runId, stageIndex],
    );
    return rows.map((r) => ({ id: r.id, url: artifactUrl(r.id), stageIndex: r.stage_index, mediaType: r.media_type, bytes: r.bytes }));
  }

  /** The artifact and its file, when the caller may read it; NOT_FOUND / FORBIDDEN otherwise. */
  async readableArtifact(caller: Caller, artifactId: string): Promise<ReadableArtifact> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(artifactId)) throw new NotFoundError(`no image artifact with id ${artifactId}`);
    const rows: Array<{ team_id: string | null; shared: boolean | null }> = await this.dataSource.query(
      `SELECT p.team_id, p.shared_for_comparison AS shared
         FROM artifacts a LEFT JOIN runs r ON r.id = a.run_id LEFT JOIN projects p ON p.id = r.project_id
        WHERE a.id = $1`,
      [artifactId],
    );
    const artifact = rows.length > 0 ? await this.dataSource.getRepository(Artifact).findOneBy({ id: artifactId }) : null;
    if (!artifact || !SERVED_KINDS.has(artifact.kind)) throw new NotFoundError(`no image artifact with id ${artifactId}`);
    const { team_id: teamId, shared } = rows[0];
    if (teamId === null) throw new ForbiddenError(`artifact ${artifactId} belongs to no run you may read`);
    if (teamId !== caller.team.id && !shared) throw new ForbiddenError(`artifact ${artifactId} belongs to another team's project that is not shared for comparison`);
    const path = this.store.pathOf(artifact);
    if (!fs.existsSync(path)) throw new NotFoundError(`artifact ${artifactId} is recorded but its file is missing from the artifact store`);
    return { artifact, path };
  }
}
