import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { hashToken } from '../../src/core/auth/tokens';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

describe('first start and the admin token', () => {
  it('writes the admin token to <dataDir>/admin-token, readable only by its owner, and stores only its hash', async () => {
    const file = path.join(server.dataDir, 'admin-token');
    expect(server.app.adminTokenFile).toBe(file);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(server.adminToken).toMatch(/^cdk_[A-Za-z0-9_-]{43}$/);

    const client = new Client({ connectionString: server.database.url });
    await client.connect();
    try {
      const rows = await client.query('SELECT token_hash, prefix FROM api_tokens');
      expect(rows.rows).toHaveLength(1);
      expect(rows.rows[0].token_hash).toBe(hashToken(server.adminToken));
      expect(rows.rows[0].token_hash).not.toContain(server.adminToken);
      expect(server.adminToken.startsWith(rows.rows[0].prefix)).toBe(true);
    } finally {
      await client.end();
    }
  });

  it('answers `me` with the admin of the admin team', async () => {
    const data = await server.ok('{ me { name role team { name isAdminTeam } } }');
    expect(data.me).toEqual({ name: 'admin', role: 'admin', team: { name: 'admin', isAdminTeam: true } });
  });

  it('does not create another admin token on the next start', async () => {
    await server.stop();
    await server.restart();
    expect(server.app.adminTokenFile).toBeUndefined();
    expect(fs.readFileSync(path.join(server.dataDir, 'admin-token'), 'utf8').trim()).toBe(server.adminToken);
    const data = await server.ok('{ me { name team { members { name } } } }');
    expect(data.me.team.members).toEqual([{ name: 'admin' }]);
    const teams = await server.app.dataSource.query('SELECT count(*)::int AS n FROM teams');
    expect(teams[0].n).toBe(1);
  });
});

describe('authentication', () => {
  it('refuses a request without a token with UNAUTHENTICATED', async () => {
    const result = await server.gql('{ projects { id } }', {}, null);
    expect(result.status).toBe(401);
    expect(result.data).toBeUndefined();
    expect(result.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
    expect(result.errors?.[0].message).toMatch(/Authorization: Bearer/);
  });

  it('refuses an unknown token and a malformed header', async () => {
    const unknown = await server.gql('{ me { id } }', {}, 'cdk_' + 'A'.repeat(43));
    expect(unknown.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Basic abc' },
      body: JSON.stringify({ query: '{ me { id } }' }),
    });
    const body = (await response.json()) as { errors: Array<{ extensions: { code: string }; message: string }> };
    expect(body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(body.errors[0].message).toMatch(/malformed Authorization header/);
  });

  it('answers schema introspection without a token, but not introspection mixed with data', async () => {
    const result = await server.gql('query { __schema { queryType { name } types { name } } }', {}, null);
    expect(result.errors).toBeUndefined();
    expect(result.data.__schema.queryType.name).toBe('Query');
    expect(result.data.__schema.types.map((t: { name: string }) => t.name)).toEqual(expect.arrayContaining(['Project', 'Plugin', 'Member']));

    const viaFragment = await server.gql('query { ...Root } fragment Root on Query { __type(name: "Project") { name } }', {}, null);
    expect(viaFragment.data.__type.name).toBe('Project');

    const mixed = await server.gql('query { __schema { queryType { name } } projects { id } }', {}, null);
    expect(mixed.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('creates, uses and revokes a member token', async () => {
    const me = await server.ok('{ me { id teamId } }');
    const created = await server.ok(
      'mutation($teamId: ID!) { createMember(teamId: $teamId, name: "ada", role: member) { id name role } }',
      { teamId: me.me.teamId },
    );
    const issued = await server.ok('mutation($id: ID!) { createApiToken(memberId: $id) { token apiToken { id prefix } } }', {
      id: created.createMember.id,
    });
    const token: string = issued.createApiToken.token;
    expect(token.startsWith(issued.createApiToken.apiToken.prefix)).toBe(true);
    expect((await server.ok('{ me { name role } }', {}, token)).me).toEqual({ name: 'ada', role: 'member' });

    // A plain member cannot add members.
    const denied = await server.gql('mutation($t: ID!) { createMember(teamId: $t, name: "eve") { id } }', { t: me.me.teamId }, token);
    expect(denied.errors?.[0].extensions?.code).toBe('FORBIDDEN');

    await server.ok('mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }', { id: issued.createApiToken.apiToken.id }, token);
    const after = await server.gql('{ me { id } }', {}, token);
    expect(after.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
    expect(after.errors?.[0].message).toMatch(/revoked/);
  });
});
