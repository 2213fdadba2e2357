/**
 * The load generator of bench:api, run as its own process so that the server's event loop serves
 * requests only: `clients` concurrent clients, each sending its next request `thinkMs` after the last one
 * is answered, for `seconds`. Reads its job as JSON from argv[2]; prints latencies as JSON on stdout.
 * Requests go through node:http with kept-alive connections: undici's fetch cost this process as much
 * CPU per request as the server spent answering it, on the same two cores.
 */
import http from 'node:http';
import { apiBenchQueries, type ApiBenchJob, type ApiBenchKind } from './api-queries';

/** POSTs `body` as JSON and resolves with the parsed answer. */
function postJson(agent: http.Agent, url: URL, token: string, body: string): Promise<{ errors?: unknown }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { errors?: unknown });
          } catch (error) {
            reject(error);
          }
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]) as ApiBenchJob;
  const queries = apiBenchQueries(job.sampleRunIds);
  const kinds = Object.keys(queries) as ApiBenchKind[];
  const latencies: Record<ApiBenchKind, number[]> = { history: [], compare: [], leaderboard: [] };
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.clients });
  const url = new URL(job.url);
  let errors = 0;
  const firstErrors: unknown[] = [];
  const deadline = Date.now() + job.seconds * 1000;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: job.clients }, async (_, c) => {
      for (let i = c; Date.now() < deadline; i++) {
        const kind = kinds[i % kinds.length];
        const t0 = performance.now();
        const body = await postJson(agent, url, job.token, JSON.stringify(queries[kind](i)));
        if (body.errors) {
          errors++;
          if (firstErrors.length < 3) firstErrors.push(body.errors);
        }
        latencies[kind].push(performance.now() - t0);
        if (job.thinkMs > 0) await new Promise((resolve) => setTimeout(resolve, job.thinkMs));
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  agent.destroy();
  process.stdout.write(JSON.stringify({ seconds: (performance.now() - started) / 1000, latencies, errors, firstErrors, cpuSeconds: (cpu.user + cpu.system) / 1e6 }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
