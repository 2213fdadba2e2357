/**
 * The runs version and the results cached under it, on a real Postgres through real HTTP: which
 * writes bump the version (and which must not), that a write is seen by the next read of the
 * leaderboard, history and seed groups even though they are cached, that one team's cached answer
 * never reaches another team, and that concurrent misses share one computation. Then the same for
 * whole answers (ResponseCache): which queries may be kept, and that a kept answer is never stale,
 * never crosses teams, never outlives its token and never holds an error.
 */
import { VersionedCache } from '../../src/core/history/versioned-cache';
import { RESPONSE_CACHE_ENTRIES, ResponseCache, selectsOnlyRunsVersioned } from '../../src/graphql/response-cache';
import { startTestServer, type TestServer } from '../support/server';
import { seedPipeline } from './seed';

let server: TestServer;
let cache: VersionedCache;
let alpha: string;
let beta: string;
let alphaProject: string;
let betaProject: string;
let alphaRuns: string[];
let betaRuns: string[];
let alphaPipeline: string;

const STAGES = [
  { plugin: 'noise', config: { count: 64 } },
  { plugin: 'kd', config: { epochs: 1, batchSize: 64, temperature: 4 } },
];
const metrics = (top1: number, params = 10_000, macs = 100_000) => ({ top1, params, macs, bytesOnDisk: params * 4, latencyMs: 1 });

beforeAll(async () => {
  server = await startTestServer({ backend: 'cpu' });
  cache = server.app.container.resolve(VersionedCache);
  const mk = async (name: string) => (await server.ok(`mutation($n: String!) { createTeam(name: $n) { team { id } adminToken { token } } }`, { n: name })).createTeam;
  alpha = (await mk('alpha')).adminToken.token;
  beta = (await mk('beta')).adminToken.token;
  const project = async (token: string) => (await server.ok(`mutation { createProject(name: "p") { id } }`, {}, token)).createProject.id;
  alphaProject = await project(alpha);
  betaProject = await project(beta);
  const seed = (projectId: string, tops: number[]) =>
    seedPipeline(server.app.dataSource, {
      projectId,
      name: 'kd',
      stages: STAGES,
      kinds: ['synthesis', 'distillation'],
      runs: tops.map((top1, i) => ({ seed: i, finalMetrics: metrics(top1), createdAt: new Date(Date.parse('2026-01-01T00:00:00Z') + i * 1000) })),
    });
  const a = await seed(alphaProject, [0.6, 0.7, 0.8]);
  alphaRuns = a.runIds;
  alphaPipeline = a.pipelineId;
  betaRuns = (await seed(betaProject, [0.95, 0.9])).runIds;
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

const version = () => cache.runsVersion();
const sql = (text: string, params: unknown[] = []) => server.app.dataSource.query(text, params);
const LEADERBOARD = `{ leaderboard(input: { metric: "top1", first: 10 }) { entries { rank value run { id } } } }`;
const leaderboardOf = async (token: string) => (await server.ok(LEADERBOARD, {}, token)).leaderboard.entries.map((e: any) => [e.run.id, e.value]);

describe('the runs version', () => {
  it('is bumped by the writes the cached queries depend on', async () => {
    const bumps = async (write: () => Promise<unknown>) => {
      const before = BigInt(await version());
      await write();
      return BigInt(await version()) > before;
    };
    expect(await bumps(() => sql(`UPDATE runs SET status = 'failed' WHERE id = $1`, [alphaRuns[0]]))).toBe(true);
    expect(await bumps(() => sql(`UPDATE runs SET status = 'succeeded' WHERE id = $1`, [alphaRuns[0]]))).toBe(true);
    expect(await bumps(() => sql(`UPDATE runs SET final_metrics = $2 WHERE id = $1`, [alphaRuns[0], JSON.stringify(metrics(0.61))]))).toBe(true);
    expect(await bumps(() => sql(`UPDATE projects SET shared_for_comparison = true WHERE id = $1`, [betaProject]))).toBe(true);
    expect(await bumps(() => sql(`UPDATE projects SET shared_for_comparison = false WHERE id = $1`, [betaProject]))).toBe(true);
  });

  it('is not bumped by heartbeats, progress, no-op updates or updates that match no row', async () => {
    const bumps = async (write: () => Promise<unknown>) => {
      const before = await version();
      await write();
      return (await version()) !== before;
    };
    expect(await bumps(() => sql(`UPDATE runs SET heartbeat_at = now() WHERE id = $1`, [alphaRuns[1]]))).toBe(false);
    expect(await bumps(() => sql(`UPDATE runs SET progress = '{"step": 3}'::jsonb WHERE id = $1`, [alphaRuns[1]]))).toBe(false);
    expect(await bumps(() => sql(`UPDATE runs SET status = status WHERE id = $1`, [alphaRuns[1]]))).toBe(false);
    expect(await bumps(() => sql(`UPDATE runs SET status = 'queued' WHERE id = '00000000-0000-0000-0000-000000000000'`))).toBe(false);
    expect(await bumps(() => sql(`UPDATE projects SET name = 'renamed' WHERE id = $1`, [alphaProject]))).toBe(false);
  });
});

describe('cached answers', () => {
  it('are reused while nothing changes, and a committed write is seen by the very next read', async () => {
    const first = await leaderboardOf(alpha);
    expect(first.map(([, v]: [string, number]) => v)).toEqual([0.8, 0.7, 0.61]);
    // Run.backend is not runs-versioned, so this answer is computed (not served whole by ResponseCache) and the ranking comes from VersionedCache.
    const rankingWithBackend = `{ leaderboard(input: { metric: "top1", first: 10 }) { entries { value run { id backend } } } }`;
    await server.ok(rankingWithBackend, {}, alpha);
    const hits = cache.stats().hits;
    await server.ok(rankingWithBackend, {}, alpha);
    expect(cache.stats().hits).toBeGreaterThan(hits);

    await sql(`UPDATE runs SET final_metrics = $2 WHERE id = $1`, [alphaRuns[0], JSON.stringify(metrics(0.99))]);
    const after = await leaderboardOf(alpha);
    expect(after[0]).toEqual([alphaRuns[0], 0.99]);

    // History's page (cached ids) and a seed group's statistics (cached aggregate) follow too.
    const history = async () =>
      (await server.ok(`{ runHistory(first: 10, filter: { statuses: [succeeded] }) { edges { node { id } } } }`, {}, alpha)).runHistory.edges.map((e: any) => e.node.id);
    const groupMean = async () => (await server.ok(`query($p: ID!) { seedGroup(pipelineId: $p) { runCount stats { metric mean } } }`, { p: alphaPipeline }, alpha)).seedGroup[0];
    expect(await history()).toHaveLength(3);
    const group = await groupMean();
    expect(group.runCount).toBe(3);
    expect(group.stats.find((s: any) => s.metric === 'top1').mean).toBeCloseTo((0.99 + 0.7 + 0.8) / 3, 10);
    await sql(`UPDATE runs SET status = 'failed' WHERE id = $1`, [alphaRuns[1]]);
    expect(await history()).toHaveLength(2);
    const regrouped = await groupMean();
    expect(regrouped.runCount).toBe(2);
    expect(regrouped.stats.find((s: any) => s.metric === 'top1').mean).toBeCloseTo((0.99 + 0.8) / 2, 10);
  });

  it("never give one team another team's answer, and follow sharing as soon as it changes", async () => {
    const ids = (rows: Array<[string, number]>) => rows.map(([id]) => id).sort();
    // Same query text, two teams: each sees its own runs only (beta's project is not shared).
    expect(ids(await leaderboardOf(alpha)).every((id) => alphaRuns.includes(id))).toBe(true);
    expect(ids(await leaderboardOf(beta))).toEqual([...betaRuns].sort());
    await server.ok(`mutation($p: ID!) { setProjectSharedForComparison(projectId: $p, shared: true) { id } }`, { p: betaProject }, beta);
    expect(ids(await leaderboardOf(alpha))).toEqual(expect.arrayContaining(betaRuns));
    await server.ok(`mutation($p: ID!) { setProjectSharedForComparison(projectId: $p, shared: false) { id } }`, { p: betaProject }, beta);
    expect(ids(await leaderboardOf(alpha)).some((id) => betaRuns.includes(id))).toBe(false);
  });

  it('share one computation between concurrent misses, and do not keep failures', async () => {
    let computed = 0;
    const slow = () =>
      new Promise<number>((resolve) => {
        computed++;
        setTimeout(() => resolve(42), 50);
      });
    const results = await Promise.all(Array.from({ length: 10 }, () => cache.get('test:slow', slow)));
    expect(results).toEqual(Array(10).fill(42));
    expect(computed).toBe(1);

    let attempts = 0;
    const flaky = async () => {
      attempts++;
      if (attempts === 1) throw new Error('database went away');
      return 'ok';
    };
    await expect(cache.get('test:flaky', flaky)).rejects.toThrow('database went away');
    await expect(cache.get('test:flaky', flaky)).resolves.toBe('ok');
    expect(attempts).toBe(2);
  });
});

describe('whole answers (ResponseCache)', () => {
  const HISTORY = `{ runHistory(first: 10) { edges { cursor node { id seed status signature } } pageInfo { hasNextPage endCursor } } }`;
  const post = async (query: string, token: string | null, variables?: Record<string, unknown>) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const response = await fetch(server.url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
    return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
  };
  const responses = () => server.app.container.resolve(ResponseCache);

  it('are kept only for queries whose every field follows the runs version', () => {
    const schema = responses().schema;
    const keeps = (q: string) => selectsOnlyRunsVersioned(schema, q);
    expect(keeps(HISTORY)).toBe(true);
    expect(keeps(LEADERBOARD)).toBe(true);
    expect(keeps(`query($ids: [ID!]!) { compareRuns(ids: $ids) { rows { signature top1 differences stageWallMs { wallMs } run { id __typename } } groups { runCount stats { metric mean std } } } }`)).toBe(true);
    expect(keeps(`{ runHistory { ...F } } fragment F on RunConnection { edges { node { id status } } }`)).toBe(true);
    // Progress, heartbeats and series change without the version; mutations and unknown fields are never kept.
    expect(keeps(`{ runHistory { edges { node { id progress { step } } } } }`)).toBe(false);
    expect(keeps(`{ runHistory { ...F } } fragment F on RunConnection { edges { node { heartbeatAt } } }`)).toBe(false);
    expect(keeps(`{ leaderboard(input: { metric: "top1" }) { entries { run { id backend } } } }`)).toBe(false);
    expect(keeps(`{ runHistory { edges { node { id } } } me { id } }`)).toBe(false);
    expect(keeps(`mutation { rerun(runId: "x") { id status } }`)).toBe(false);
    expect(keeps(`{ runHistory { edges { node { noSuchField } } } }`)).toBe(false);
    expect(keeps(`{ runHistory {`)).toBe(false);
  });

  it('serve a repeated query from memory, byte for byte, and the next read after a write sees it', async () => {
    const first = await post(HISTORY, alpha);
    expect(first.status).toBe(200);
    const hits = responses().stats().hits;
    const again = await post(HISTORY, alpha);
    expect(responses().stats().hits).toBe(hits + 1);
    expect(again).toEqual(first);
    expect(again.type).toBe('application/json; charset=utf-8');

    const statusOf = (text: string, id: string) => JSON.parse(text).data.runHistory.edges.find((e: any) => e.node.id === id)?.node.status;
    const target = alphaRuns[2];
    const before = statusOf(first.text, target);
    const changed = before === 'failed' ? 'succeeded' : 'failed';
    await sql(`UPDATE runs SET status = $2 WHERE id = $1`, [target, changed]);
    expect(statusOf((await post(HISTORY, alpha)).text, target)).toBe(changed);
    await sql(`UPDATE runs SET status = $2 WHERE id = $1`, [target, before]);
    expect(statusOf((await post(HISTORY, alpha)).text, target)).toBe(before);
  });

  it("keep each team's answer apart, follow sharing, and refuse a revoked token even for a kept answer", async () => {
    const idsOf = (text: string) => JSON.parse(text).data.runHistory.edges.map((e: any) => e.node.id);
    const alphaIds = idsOf((await post(HISTORY, alpha)).text);
    const betaIds = idsOf((await post(HISTORY, beta)).text);
    expect(alphaIds.some((id: string) => betaRuns.includes(id))).toBe(false);
    expect([...betaIds].sort()).toEqual([...betaRuns].sort());
    await server.ok(`mutation($p: ID!) { setProjectSharedForComparison(projectId: $p, shared: true) { id } }`, { p: betaProject }, beta);
    expect(idsOf((await post(HISTORY, alpha)).text)).toEqual(expect.arrayContaining(betaRuns));
    await server.ok(`mutation($p: ID!) { setProjectSharedForComparison(projectId: $p, shared: false) { id } }`, { p: betaProject }, beta);
    expect(idsOf((await post(HISTORY, alpha)).text).some((id: string) => betaRuns.includes(id))).toBe(false);

    const me = (await server.ok(`{ me { id } }`, {}, alpha)).me.id;
    const issued = (await server.ok(`mutation($m: ID!) { createApiToken(memberId: $m) { token apiToken { id } } }`, { m: me }, alpha)).createApiToken;
    expect((await post(HISTORY, issued.token)).status).toBe(200);
    expect((await post(HISTORY, issued.token)).status).toBe(200);
    await server.ok(`mutation($id: ID!) { revokeApiToken(id: $id) { id } }`, { id: issued.apiToken.id }, alpha);
    const refused = await post(HISTORY, issued.token);
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.text).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect((await post(HISTORY, null)).status).toBe(401);
  });

  it('let concurrent requests for an answer being computed share that one computation', async () => {
    await sql(`UPDATE runs SET final_metrics = $2 WHERE id = $1`, [alphaRuns[2], JSON.stringify(metrics(0.55))]);
    const before = responses().stats();
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(LEADERBOARD, alpha)));
    const after = responses().stats();
    expect(new Set(answers.map((a) => a.text)).size).toBe(1);
    expect(JSON.parse(answers[0].text).data.leaderboard.entries.map((e: any) => e.value)).toContain(0.55);
    expect(after.misses - before.misses).toBe(1);
    expect(after.hits + after.shared - before.hits - before.shared).toBe(9);
  });

  it('stay within their entry bound, and an answer read at an older version never replaces a newer one', () => {
    const kept = new ResponseCache(responses().schema);
    for (let i = 0; i <= RESPONSE_CACHE_ENTRIES; i++) kept.begin(`k${i}`, '7').finish(`{"data":${i}}`);
    expect(kept.stats().entries).toBe(RESPONSE_CACHE_ENTRIES);
    expect(kept.lookup('k0', '7')).toBeUndefined(); // the least recently used went first
    expect(kept.lookup(`k${RESPONSE_CACHE_ENTRIES}`, '7')).toBe(`{"data":${RESPONSE_CACHE_ENTRIES}}`);
    const slow = kept.begin('k1', '8');
    kept.begin('k1', '9').finish('newer');
    slow.finish('older');
    expect(kept.lookup('k1', '9')).toBe('newer');
    expect(kept.lookup('k1', '8')).toBeUndefined();
    expect(kept.cacheable('{ runHistory { edges { node { id } } } }' + ' '.repeat(20_000))).toBe(false);
  });

  it('never keep an answer with errors', async () => {
    const COMPARE = `query($ids: [ID!]!) { compareRuns(ids: $ids) { rows { top1 } } }`;
    const entries = responses().stats().entries;
    for (let i = 0; i < 2; i++) {
      const refused = await post(COMPARE, alpha, { ids: [alphaRuns[0], betaRuns[0]] });
      expect(JSON.parse(refused.text).errors[0].extensions.code).toBe('FORBIDDEN');
    }
    expect(responses().stats().entries).toBe(entries);
    const allowed = JSON.parse((await post(COMPARE, alpha, { ids: [alphaRuns[0]] })).text);
    expect(allowed.data.compareRuns.rows).toHaveLength(1);
    expect(responses().stats().entries).toBe(entries + 1);
  });
});
