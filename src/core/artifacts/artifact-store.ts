import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { inject, injectable } from 'tsyringe';
import { DataSource, type EntityManager } from 'typeorm';
import type { CondenseConfig } from '../config/config';
import { CONFIG } from '../app/tokens';
import { InvalidInputError } from '../errors';
import { Artifact } from '../records/artifact.entity';

export interface PutOptions {
  /** Save the row in this transaction instead of on its own. */
  manager?: EntityManager;
  /** The run producing the artifact, if any. */
  runId?: string | null;
}

/** Media type recorded for stored directories (a TF.js LayersModel directory, for example). */
export const DIRECTORY_MEDIA_TYPE = 'inode/directory';

/**
 * Content-addressed files and directories under `<dataDir>/artifacts`, each at `<hash[0..2]>/<hash>`,
 * with one Artifact row per (kind, content). Putting the same content twice gives the same row.
 * Content is written to a temporary name and renamed into place, so a stored path is always complete.
 */
@injectable()
export class ArtifactStore {
  readonly root: string;

  constructor(
    private readonly dataSource: DataSource,
    @inject(CONFIG) config: CondenseConfig,
  ) {
    this.root = path.join(config.dataDir, 'artifacts');
  }

  /** Stores bytes (an image, a JSON log...). */
  async putBuffer(kind: string, buffer: Buffer, mediaType: string, options: PutOptions = {}): Promise<Artifact> {
    const hash = crypto.createHash('sha256').update(buffer).digest('hex');
    const storagePath = storagePathOf(hash);
    const target = path.join(this.root, storagePath);
    if (!fs.existsSync(target)) {
      const tmp = this.temporaryPath();
      fs.writeFileSync(tmp, buffer);
      this.moveIntoPlace(tmp, target);
    }
    return this.record({ kind, contentHash: hash, bytes: buffer.length, storagePath, mediaType }, options);
  }

  /**
   * Stores a directory (a model directory, say): its hash covers every file's relative path and
   * content. Symbolic links are refused rather than followed.
   */
  async putDirectory(kind: string, dirPath: string, options: PutOptions = {}): Promise<Artifact> {
    const { hash, bytes } = hashDirectory(dirPath);
    const storagePath = storagePathOf(hash);
    const target = path.join(this.root, storagePath);
    if (!fs.existsSync(target)) {
      const tmp = this.temporaryPath();
      fs.cpSync(dirPath, tmp, { recursive: true, errorOnExist: true, force: false });
      this.moveIntoPlace(tmp, target);
    }
    return this.record({ kind, contentHash: hash, bytes, storagePath, mediaType: DIRECTORY_MEDIA_TYPE }, options);
  }

  /** Absolute path of a stored artifact (a file, or a directory for directory artifacts). */
  pathOf(artifact: Pick<Artifact, 'storagePath'>): string {
    return path.join(this.root, artifact.storagePath);
  }

  private temporaryPath(): string {
    const dir = path.join(this.root, 'tmp');
    fs.mkdirSync(dir, { recursive: true });
    return path.join(dir, crypto.randomUUID());
  }

  private moveIntoPlace(tmp: string, target: string): void {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    try {
      fs.renameSync(tmp, target);
    } catch (error) {
      // Another writer stored the same content first: theirs is identical, keep it.
      fs.rmSync(tmp, { recursive: true, force: true });
      if (!fs.existsSync(target)) throw error;
    }
  }

  /** Inserts the row unless (kind, hash) is already recorded; returns the stored row either way. */
  private async record(values: Omit<Artifact, 'id' | 'createdAt' | 'runId' | 'stageIndex'>, options: PutOptions): Promise<Artifact> {
    const manager = options.manager ?? this.dataSource.manager;
    await manager
      .createQueryBuilder()
      .insert()
      .into(Artifact)
      .values({ ...values, runId: options.runId ?? null })
      .orIgnore()
      .execute();
    return manager.getRepository(Artifact).findOneByOrFail({ kind: values.kind, contentHash: values.contentHash });
  }
}

function storagePathOf(hash: string): string {
  return path.join(hash.slice(0, 2), hash);
}

/**
 * sha256 over the sorted list of `relative/path NUL sha256(content)` lines of every file below
 * `dir`, and the total size of the files.
 */
export function hashDirectory(dir: string): { hash: string; bytes: number } {
  const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (!stat) throw new InvalidInputError(`directory ${dir} does not exist`);
  if (!stat.isDirectory()) throw new InvalidInputError(`${dir} is not a directory`);
  const entries: Array<{ rel: string; hash: string; size: number }> = [];
  const walk = (abs: string, rel: string) => {
    for (const entry of fs.readdirSync(abs, { withFileTypes: true })) {
      const childAbs = path.join(abs, entry.name);
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isSymbolicLink()) throw new InvalidInputError(`${childAbs} is a symbolic link; store a directory of plain files`);
      if (entry.isDirectory()) walk(childAbs, childRel);
      else if (entry.isFile()) {
        const content = fs.readFileSync(childAbs);
        entries.push({ rel: childRel, hash: crypto.createHash('sha256').update(content).digest('hex'), size: content.length });
      }
    }
  };
  walk(dir, '');
  entries.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  const digest = crypto.createHash('sha256');
  for (const e of entries) digest.update(`${e.rel}\0${e.hash}\n`);
  return { hash: digest.digest('hex'), bytes: entries.reduce((sum, e) => sum + e.size, 0) };
}
