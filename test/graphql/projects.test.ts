import fs from 'node:fs';
import path from 'node:path';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;
let teamBToken: string;
let projectA: string;

beforeAll(async () => {
  server = await startTestServer();
  const created = await server.ok('mutation { createTeam(name: "team-b") { team { id name } admin { role } adminToken { token } } }');
  expect(created.createTeam.admin.role).toBe('admin');
  teamBToken = created.createTeam.adminToken.token;
  projectA = (await server.ok('mutation { createProject(name: "alpha") { id name sharedForComparison } }')).createProject.id;
});
afterAll(async () => {
  await server?.close();
});

const count = async (table: string): Promise<number> => (await server.app.dataSource.query(`SELECT count(*)::int AS n FROM ${table}`))[0].n;

describe('teams', () => {
  it('lets only admins of the admin team create teams, and team names are unique', async () => {
    const denied = await server.gql('mutation { createTeam(name: "team-c") { team { id } } }', {}, teamBToken);
    expect(denied.errors?.[0].extensions?.code).toBe('FORBIDDEN');
    const duplicate = await server.gql('mutation { createTeam(name: "team-b") { team { id } } }');
    expect(duplicate.errors?.[0].extensions?.code).toBe('CONFLICT');
    expect(await count('teams')).toBe(2);
    expect(await count('members')).toBe(2);
  });

  it('rejects a blank name with BAD_USER_INPUT', async () => {
    const blank = await server.gql('mutation { createProject(name: "   ") { id } }');
    expect(blank.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    expect(blank.errors?.[0].message).toMatch(/project name must not be empty/);
  });
});

describe('team isolation', () => {
  it("keeps team A's project out of team B's reach", async () => {
    expect((await server.ok('{ projects { name } }', {}, teamBToken)).projects).toEqual([]);

    const read = await server.gql('query($id: ID!) { project(id: $id) { name } }', { id: projectA }, teamBToken);
    expect(read.errors?.[0].extensions?.code).toBe('FORBIDDEN');
    expect(read.data).toBeNull();

    const enable = await server.gql('mutation($p: ID!) { setPluginEnabled(projectId: $p, plugin: "kd", enabled: true) { enabled } }', { p: projectA }, teamBToken);
    expect(enable.errors?.[0].extensions?.code).toBe('FORBIDDEN');

    const share = await server.gql('mutation($p: ID!) { setProjectSharedForComparison(projectId: $p, shared: true) { id } }', { p: projectA }, teamBToken);
    expect(share.errors?.[0].extensions?.code).toBe('FORBIDDEN');

    const models = await server.gql('query($p: ID!) { models(projectId: $p) { id } }', { p: projectA }, teamBToken);
    expect(models.errors?.[0].extensions?.code).toBe('FORBIDDEN');

    expect(await count('project_plugins')).toBe(0);
    const [row] = await server.app.dataSource.query('SELECT shared_for_comparison FROM projects WHERE id = $1', [projectA]);
    expect(row.shared_for_comparison).toBe(false);
  });

  it('gives each team its own project names', async () => {
    const b = await server.ok('mutation { createProject(name: "alpha") { id name } }', {}, teamBToken);
    expect(b.createProject.id).not.toBe(projectA);
    const again = await server.gql('mutation { createProject(name: "alpha") { id } }');
    expect(again.errors?.[0].extensions?.code).toBe('CONFLICT');
    expect((await server.ok('{ projects { id } }')).projects).toEqual([{ id: projectA }]);
  });

  it('answers NOT_FOUND for an id that does not exist and BAD_USER_INPUT for one that is not a UUID', async () => {
    const missing = await server.gql('{ project(id: "00000000-0000-4000-8000-000000000000") { id } }');
    expect(missing.errors?.[0].extensions?.code).toBe('NOT_FOUND');
    const malformed = await server.gql('{ project(id: "42") { id } }');
    expect(malformed.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('plugins', () => {
  const manifest: Array<{ name: string; kind: string; version: string; defaults: Record<string, unknown> }> = JSON.parse(
    fs.readFileSync(path.resolve(__dirname, '../../plugins.json'), 'utf8'),
  );

  it('lists every plugin of plugins.json with kind, version, defaults and a JSON Schema of its config', async () => {
    const { plugins } = await server.ok('{ plugins { name kind version description inputs output configSchema defaults } }');
    expect(plugins.map((p: { name: string }) => p.name).sort()).toEqual(manifest.map((m) => m.name).sort());
    for (const entry of manifest) {
      const listed = plugins.find((p: { name: string }) => p.name === entry.name);
      expect(listed).toMatchObject({ kind: entry.kind, version: entry.version, defaults: entry.defaults });
      expect(listed.configSchema.type).toBe('object');
      expect(Object.keys(listed.configSchema.properties)).toEqual(expect.arrayContaining(Object.keys(entry.defaults)));
      expect(listed.output.length).toBeGreaterThan(0);
    }
  });

  it('enables and disables plugins per project', async () => {
    const states = async () =>
      (await server.ok('query($id: ID!) { project(id: $id) { plugins { name enabled plugin { kind } } } }', { id: projectA })).project.plugins;
    expect((await states()).every((s: { enabled: boolean }) => !s.enabled)).toBe(true);

    const on = await server.ok('mutation($p: ID!) { setPluginEnabled(projectId: $p, plugin: "kd", enabled: true) { name enabled plugin { kind } } }', { p: projectA });
    expect(on.setPluginEnabled).toEqual({ name: 'kd', enabled: true, plugin: { kind: 'distillation' } });
    expect((await states()).filter((s: { enabled: boolean }) => s.enabled).map((s: { name: string }) => s.name)).toEqual(['kd']);

    await server.ok('mutation($p: ID!) { setPluginEnabled(projectId: $p, plugin: "kd", enabled: false) { enabled } }', { p: projectA });
    expect((await states()).every((s: { enabled: boolean }) => !s.enabled)).toBe(true);
  });

  it('refuses an unknown plugin with BAD_USER_INPUT naming the known ones, and stores nothing', async () => {
    const before = await server.app.dataSource.query('SELECT * FROM project_plugins ORDER BY plugin');
    const result = await server.gql('mutation($p: ID!) { setPluginEnabled(projectId: $p, plugin: "deep-magic", enabled: true) { enabled } }', { p: projectA });
    const error = result.errors?.[0];
    expect(error?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(error?.message).toContain('unknown plugin "deep-magic"');
    for (const m of manifest) expect(error?.message).toContain(m.name);
    expect(error?.extensions?.knownPlugins).toEqual(manifest.map((m) => m.name).sort());
    expect(await server.app.dataSource.query('SELECT * FROM project_plugins ORDER BY plugin')).toEqual(before);
  });
});
