import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadModelDir, modelContentHash } from '../../src/core/models/model-files';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
let work: string;
let projectId: string;

beforeAll(async () => {
  server = await startTestServer({ backend: 'wasm' });
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-export-'));
  projectId = (await server.ok(`mutation { createProject(name: "export") { id } }`)).createProject.id;
}, 120_000);

afterAll(async () => {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

const EXPORT = `mutation($id: ID!, $path: String!) { exportModel(id: $id, path: $path) { path bytes contentHash } }`;

test('a stored model exports as a LayersModel directory that plain @tensorflow/tfjs loads with the same predictions', async () => {
  const created = await server.ok(
    `mutation($p: ID!) { createZooModel(projectId: $p, name: "lenet", spec: { architecture: "lenet5-bn", inputShape: [28, 28, 1], numClasses: 10 }, seed: 3) { id contentHash } }`,
    { p: projectId },
  );
  const target = path.join(work, 'lenet-export');
  const { exportModel } = await server.ok(EXPORT, { id: created.createZooModel.id, path: target });
  expect(exportModel.path).toBe(target);
  expect(exportModel.contentHash).toBe(created.createZooModel.contentHash);
  expect(await modelContentHash(target)).toBe(created.createZooModel.contentHash);

  // Predictions of Condense's loader and of a script that knows nothing of Condense agree.
  const input = Array.from({ length: 2 * 784 }, (_, i) => ((i * 37) % 101) / 100);
  const inputFile = path.join(work, 'input.json');
  fs.writeFileSync(inputFile, JSON.stringify({ shape: [2, 28, 28, 1], data: input }));
  const handle = await loadModelDir(target);
  const ours = tf.tidy(() => Array.from((handle.model.predict(tf.tensor4d(input, [2, 28, 28, 1])) as tf.Tensor).dataSync()));
  handle.model.dispose();
  const script = path.resolve(__dirname, '../fixtures/plain-tfjs-load.js');
  const out = JSON.parse(execFileSync(process.execPath, [script, target, inputFile], { encoding: 'utf8' }));
  const theirs: number[] = out.data;
  expect(out.shape).toEqual([2, 10]);
  expect(theirs.length).toBe(ours.length);
  theirs.forEach((v, i) => expect(v).toBeCloseTo(ours[i], 4));
}, 120_000);

test('exporting over a non-empty directory is refused and leaves it as it was', async () => {
  const models = await server.ok(`query($p: ID!) { models(projectId: $p) { id } }`, { p: projectId });
  const occupied = path.join(work, 'occupied');
  fs.mkdirSync(occupied);
  fs.writeFileSync(path.join(occupied, 'notes.txt'), 'keep me');
  const result = await server.gql(EXPORT, { id: models.models[0].id, path: occupied });
  expect(result.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  expect(result.errors?.[0].message).toMatch(/not an empty directory/);
  expect(fs.readdirSync(occupied)).toEqual(['notes.txt']);
});
