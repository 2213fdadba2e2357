import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { ArtifactStore, hashDirectory } from '../../src/core/artifacts/artifact-store';
import type { CondenseConfig } from '../../src/core/config/config';
import { createDataSource, runMigrationsLocked } from '../../src/core/db/data-source';
import { InvalidInputError } from '../../src/core/errors';
import { Artifact } from '../../src/core/records/artifact.entity';
import { createTestDatabase, type TestDatabase } from '../support/database';

let db: TestDatabase;
let ds: DataSource;
let dataDir: string;
let store: ArtifactStore;

beforeAll(async () => {
  db = await createTestDatabase();
  ds = await createDataSource(db.url).initialize();
  await runMigrationsLocked(ds);
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-artifacts-'));
  store = new ArtifactStore(ds, { dataDir } as CondenseConfig);
});
afterAll(async () => {
  await ds?.destroy();
  await db?.drop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function writeTree(root: string, files: Record<string, string>, order: string[] = Object.keys(files)): string {
  for (const rel of order) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), files[rel]);
  }
  return root;
}

describe('ArtifactStore', () => {
  it('stores a buffer under its SHA-256 and gives the same row for the same content', async () => {
    const bytes = Buffer.from('a tiny png, pretend');
    const sha = crypto.createHash('sha256').update(bytes).digest('hex');
    const first = await store.putBuffer('image', bytes, 'image/png');
    const second = await store.putBuffer('image', Buffer.from(bytes), 'image/png');
    expect(second.id).toBe(first.id);
    expect(first.contentHash).toBe(sha);
    expect(first.storagePath).toBe(path.join(sha.slice(0, 2), sha));
    expect(first.bytes).toBe(bytes.length);
    expect(fs.readFileSync(store.pathOf(first))).toEqual(bytes);
    expect(await ds.getRepository(Artifact).countBy({ contentHash: sha })).toBe(1);

    const other = await store.putBuffer('image', Buffer.from('different'), 'image/png');
    expect(other.id).not.toBe(first.id);
  });

  it('hashes a directory by file names and contents, not by the order files were written', async () => {
    const files = { 'model.json': '{"a":1}', 'weights.bin': 'WWWW', 'sub/extra.txt': 'x' };
    const a = writeTree(fs.mkdtempSync(path.join(os.tmpdir(), 'dir-a-')), files);
    const b = writeTree(fs.mkdtempSync(path.join(os.tmpdir(), 'dir-b-')), files, ['sub/extra.txt', 'weights.bin', 'model.json']);
    const renamed = writeTree(fs.mkdtempSync(path.join(os.tmpdir(), 'dir-c-')), { 'model.json': '{"a":1}', 'weights2.bin': 'WWWW', 'sub/extra.txt': 'x' });
    expect(hashDirectory(a)).toEqual(hashDirectory(b));
    expect(hashDirectory(a).bytes).toBe(7 + 4 + 1);
    expect(hashDirectory(renamed).hash).not.toBe(hashDirectory(a).hash);

    const stored = await store.putDirectory('model', a);
    const again = await store.putDirectory('model', b);
    expect(again.id).toBe(stored.id);
    const where = store.pathOf(stored);
    expect(fs.readFileSync(path.join(where, 'weights.bin'), 'utf8')).toBe('WWWW');
    expect(fs.readFileSync(path.join(where, 'sub/extra.txt'), 'utf8')).toBe('x');
    expect(hashDirectory(where).hash).toBe(stored.contentHash);
    for (const d of [a, b, renamed]) fs.rmSync(d, { recursive: true });
  });

  it('saves nothing when the surrounding transaction rolls back', async () => {
    const bytes = Buffer.from('rolled back');
    await expect(
      ds.transaction(async (manager) => {
        await store.putBuffer('log', bytes, 'text/plain', { manager });
        throw new Error('later step failed');
      }),
    ).rejects.toThrow('later step failed');
    const sha = crypto.createHash('sha256').update(bytes).digest('hex');
    expect(await ds.getRepository(Artifact).countBy({ contentHash: sha })).toBe(0);
  });

  it('refuses symbolic links and missing directories', async () => {
    const dir = writeTree(fs.mkdtempSync(path.join(os.tmpdir(), 'dir-link-')), { 'model.json': '{}' });
    fs.symlinkSync('/etc/passwd', path.join(dir, 'weights.bin'));
    await expect(store.putDirectory('model', dir)).rejects.toThrow(InvalidInputError);
    await expect(store.putDirectory('model', path.join(dir, 'nope'))).rejects.toThrow(/does not exist/);
    fs.rmSync(dir, { recursive: true });
  });
});
