/** The three queries bench:api sends: run history, a comparison of 5 runs, and a leaderboard. */
export type ApiBenchKind = 'history' | 'compare' | 'leaderboard';

export interface ApiBenchJob {
  url: string;
  token: string;
  clients: number;
  seconds: number;
  /** Pause between an answer and the client's next request. */
  thinkMs: number;
  sampleRunIds: string[];
}

export function apiBenchQueries(sample: string[]): Record<ApiBenchKind, (i: number) => { query: string; variables?: Record<string, unknown> }> {
  return {
    history: () => ({ query: `{ runHistory(first: 20, filter: { metrics: [{ name: "top1", min: 0.8 }] }) { edges { cursor node { id seed status } } pageInfo { hasNextPage endCursor } } }` }),
    compare: (i) => {
      // Deterministic choice of 5 of the caller's runs (no global RNG).
      const ids = Array.from({ length: 5 }, (_, k) => sample[(i * 37 + k * 11) % sample.length]);
      return { query: `query($ids: [ID!]!) { compareRuns(ids: $ids) { rows { signature top1 params macs differences } groups { runCount stats { metric mean std } } } }`, variables: { ids } };
    },
    leaderboard: () => ({ query: `{ leaderboard(input: { metric: "top1", constraints: [{ name: "params", max: 30000 }], paretoAgainst: macs, first: 20 }) { entries { rank value run { id } } paretoFront { value cost } } }` }),
  };
}
