import * as tf from '@tensorflow/tfjs';
import { silentLogger } from '../../src/core/logging/logger';
import type { StageContext } from '../../src/core/plugins/contracts';

/** A progress line writer to stderr: `[bench:NAME] HH:MM:SS message` (stdout keeps the tables). */
export function benchLogger(name: string): (message: string) => void {
  return (message) => process.stderr.write(`[bench:${name}] ${new Date().toISOString().slice(11, 19)} ${message}\n`);
}

/**
 * A StageContext for running a plugin inside a benchmark: seeded, never cancelled, plugin logs silenced,
 * and about `linesPerStage` progress lines (`label step/total metric value, ...`) written through `log`.
 */
export function benchStageContext(seed: number, log: (message: string) => void, label: string, linesPerStage = 10): StageContext {
  let last = 0;
  return {
    seed,
    backend: tf.getBackend(),
    signal: new AbortController().signal,
    log: silentLogger,
    report: (p) => {
      if (p.step - last >= Math.max(1, Math.floor(p.total / linesPerStage)) || p.step === p.total) {
        last = p.step;
        const metrics = Object.entries(p.metrics ?? {})
          .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toPrecision(4)}`)
          .join(', ');
        log(`  ${label} ${p.step}/${p.total} ${metrics}`);
      }
    },
  };
}
