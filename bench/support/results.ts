import fs from 'node:fs';
import path from 'node:path';
import { gitCommit, machineInfo, repoRoot, type MachineInfo } from './machine';

/** The envelope every benchmark result file has, so results from different runs can be compared. */
export interface BenchResultFile<T> {
  benchmark: string;
  date: string;
  commit: string;
  machine: MachineInfo;
  seed: number;
  results: T;
}

/** Writes bench/results/<name>.json with machine, date, commit and seed around `results`; returns the path. */
export function writeBenchResults<T>(name: string, seed: number, results: T, extra: Record<string, unknown> = {}): string {
  const file: BenchResultFile<T> & Record<string, unknown> = {
    benchmark: name,
    date: new Date().toISOString(),
    commit: gitCommit(),
    machine: machineInfo(),
    seed,
    ...extra,
    results,
  };
  const dir = path.join(repoRoot(), 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const target = path.join(dir, `${name}.json`);
  fs.writeFileSync(target, JSON.stringify(file, null, 2) + '\n');
  return target;
}
