/**
 * The load generator of bench:api, run as its own process so that the server's event loop serves
 * requests only: `clients` concurrent clients, each sending its next request `thinkMs` after the last one
 * is answered, for `seconds`. Reads its job as JSON from argv[2]; prints latencies as JSON on stdout.
 */
import { apiBenchQueries, type ApiBenchJob, type ApiBenchKind } from './api-queries';

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]) as ApiBenchJob;
  const queries = apiBenchQueries(job.sampleRunIds);
  const kinds = Object.keys(queries) as ApiBenchKind[];
  const latencies: Record<ApiBenchKind, number[]> = { history: [], compare: [], leaderboard: [] };
  let errors = 0;
  const firstErrors: unknown[] = [];
  const deadline = Date.now() + job.seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: job.clients }, async (_, c) => {
      for (let i = c; Date.now() < deadline; i++) {
        const kind = kinds[i % kinds.length];
        const t0 = performance.now();
        const response = await fetch(job.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${job.token}` }, body: JSON.stringify(queries[kind](i)) });
        const body = (await response.json()) as { errors?: unknown };
        if (body.errors) {
          errors++;
          if (firstErrors.length < 3) firstErrors.push(body.errors);
        }
        latencies[kind].push(performance.now() - t0);
        if (job.thinkMs > 0) await new Promise((resolve) => setTimeout(resolve, job.thinkMs));
      }
    }),
  );
  process.stdout.write(JSON.stringify({ seconds: (performance.now() - started) / 1000, latencies, errors, firstErrors }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
