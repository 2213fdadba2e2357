/**
 * The API refuses what took other trackers' GraphQL endpoints down (MLflow CVE-2025-0453 class)
 * before executing anything, with a clear code, and keeps answering normal queries meanwhile.
 */
import { getIntrospectionQuery } from 'graphql';
import { QUERY_LIMITS } from '../../src/graphql/limits';
import { startTestServer, type TestServer } from '../support/server';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ backend: 'cpu' });
}, 120_000);

afterAll(async () => {
  await server?.close();
});

const post = (path: string, body: string, token: string | null = server.adminToken) =>
  fetch(new URL(path, server.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  });

const codes = (result: { errors?: Array<{ extensions?: { code?: string } }> }) => (result.errors ?? []).map((e) => e.extensions?.code);

test('a query nested deeper than the limit is refused with QUERY_TOO_DEEP', async () => {
  const depth = QUERY_LIMITS.maxDepth + 1;
  const query = `{ ${'a { '.repeat(depth - 1)}b${' }'.repeat(depth - 1)} }`;
  const result = await server.gql(query);
  expect(result.status).toBe(400);
  expect(codes(result)).toContain('QUERY_TOO_DEEP');
  expect(result.errors!.find((e) => e.extensions?.code === 'QUERY_TOO_DEEP')!.message).toMatch(/nested 11 levels deep; at most 10/);
  // At the limit, only the schema's own complaints remain.
  const ok = `{ ${'a { '.repeat(QUERY_LIMITS.maxDepth - 1)}b${' }'.repeat(QUERY_LIMITS.maxDepth - 1)} }`;
  expect(codes(await server.gql(ok))).not.toContain('QUERY_TOO_DEEP');
});

test('depth through fragments counts too', async () => {
  const query = `{ ...F0 } ${Array.from({ length: 12 }, (_, i) => `fragment F${i} on Query { me { ...F${i + 1} } }`).join(' ')} fragment F12 on Member { id }`;
  expect(codes(await server.gql(query))).toContain('QUERY_TOO_DEEP');
});

test('an alias flood is refused with TOO_MANY_ALIASES', async () => {
  const query = `{ ${Array.from({ length: QUERY_LIMITS.maxAliases + 1 }, (_, i) => `a${i}: me { id }`).join(' ')} }`;
  const result = await server.gql(query);
  expect(codes(result)).toEqual(['TOO_MANY_ALIASES']);
  const fine = `{ ${Array.from({ length: QUERY_LIMITS.maxAliases }, (_, i) => `a${i}: me { id }`).join(' ')} }`;
  expect((await server.gql(fine)).errors).toBeUndefined();
});

test('a field flood through nested fragments (a "fragment bomb") is refused with QUERY_TOO_COSTLY', async () => {
  // Each level spreads the next twice: 2^15 fields once expanded, from a document of a few hundred bytes.
  const levels = 15;
  const fragments = Array.from({ length: levels }, (_, i) => `fragment L${i} on Member { ...L${i + 1} ...L${i + 1} }`).join(' ');
  const query = `{ me { ...L0 } } ${fragments} fragment L${levels} on Member { id name }`;
  const started = Date.now();
  const result = await server.gql(query);
  expect(codes(result)).toContain('QUERY_TOO_COSTLY');
  expect(Date.now() - started).toBeLessThan(2000);
});

test('too many tokens are refused at parse time', async () => {
  const query = `{ me { ${'id '.repeat(QUERY_LIMITS.maxTokens)} } }`;
  const result = await server.gql(query);
  expect(result.status).toBe(400);
  expect(codes(result)).toEqual(['GRAPHQL_PARSE_FAILED']);
  expect(result.errors![0].message).toMatch(/more tha[nt] 10000 tokens/) // graphql-js spells it "more that";
});

test('batched operations (an array body) are refused with BATCHING_NOT_SUPPORTED', async () => {
  const response = await post('/graphql', JSON.stringify([{ query: '{ me { id } }' }, { query: '{ me { name } }' }]));
  expect(response.status).toBe(400);
  expect(codes((await response.json()) as any)).toEqual(['BATCHING_NOT_SUPPORTED']);
});

test('bodies over 1 MB at /graphql get 413 PAYLOAD_TOO_LARGE; uploads pass at /graphql/upload, which takes nothing else', async () => {
  const big = 'A'.repeat(2 * 1024 * 1024);
  const upload = JSON.stringify({
    query: `mutation($w: String!) { uploadModel(projectId: "00000000-0000-4000-8000-000000000000", name: "m", modelJson: "{}", weightsBase64: $w) { id } }`,
    variables: { w: big },
  });
  const refused = await post('/graphql', upload);
  expect(refused.status).toBe(413);
  const body = (await refused.json()) as any;
  expect(codes(body)).toEqual(['PAYLOAD_TOO_LARGE']);
  expect(body.errors[0].message).toMatch(/\/graphql\/upload/);

  // The same body reaches the resolver at the upload endpoint (which then reports the unknown project).
  const accepted = await post('/graphql/upload', upload);
  expect(codes((await accepted.json()) as any)).toEqual(['NOT_FOUND']);

  const other = await post('/graphql/upload', JSON.stringify({ query: '{ me { id } }' }));
  expect(other.status).toBe(400);
  expect(codes((await other.json()) as any)).toEqual(['BAD_REQUEST']);
});

test('list fields are capped: runHistory pages hold at most 100 runs', async () => {
  const result = await server.gql(`{ runHistory(first: 1000) { edges { cursor } } }`);
  expect(codes(result)).toEqual(['BAD_USER_INPUT']);
});

test('the standard introspection query still answers', async () => {
  const result = await server.gql(getIntrospectionQuery(), {}, null);
  expect(result.errors).toBeUndefined();
  expect(result.data.__schema.queryType.name).toBe('Query');
});

test('normal queries answer quickly while floods of refused requests arrive', async () => {
  const deep = `{ ${'a { '.repeat(30)}b${' }'.repeat(30)} }`;
  const aliases = `{ ${Array.from({ length: 200 }, (_, i) => `a${i}: me { id }`).join(' ')} }`;
  const flood = Array.from({ length: 100 }, (_, i) => server.gql(i % 2 ? deep : aliases));
  const timings: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    const result = await server.gql('{ me { id name } }');
    timings.push(performance.now() - started);
    expect(result.errors).toBeUndefined();
  }
  const refused = await Promise.all(flood);
  expect(refused.every((r) => r.status === 400)).toBe(true);
  // Refused requests are checked before authentication (no database work), so the normal query only
  // waits for their parsing; bound generously for a loaded 2-core machine.
  expect(Math.max(...timings)).toBeLessThan(2000);
});
