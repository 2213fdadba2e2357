import type { DataSource } from 'typeorm';
import { MetricPoint } from '../records/metric-point.entity';

type PendingPoint = Pick<MetricPoint, 'runId' | 'stageIndex' | 'step' | 'name' | 'value'>;

/**
 * Collects a running stage's metric points and writes them in batches (every `maxPoints` points or
 * `maxAgeMs`, whichever comes first), so reporting every step does not mean a query every step.
 */
export class MetricBuffer {
  private pending: PendingPoint[] = [];
  private oldest = 0;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly dataSource: DataSource,
    private readonly maxPoints = 500,
    private readonly maxAgeMs = 1000,
  ) {}

  add(runId: string, stageIndex: number, step: number, metrics: Record<string, number>): void {
    if (this.pending.length === 0) this.oldest = Date.now();
    for (const [name, value] of Object.entries(metrics)) {
      if (Number.isFinite(value)) this.pending.push({ runId, stageIndex, step, name, value });
    }
    if (this.pending.length >= this.maxPoints || Date.now() - this.oldest >= this.maxAgeMs) void this.flush().catch(() => undefined);
  }

  /** Writes what is pending; resolves when every earlier write is done. */
  flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.writing = this.writing.then(async () => {
      // A resumed stage may report a step again: the first value written for (run, stage, name, step) stays.
      if (batch.length > 0) await this.dataSource.createQueryBuilder().insert().into(MetricPoint).values(batch).orIgnore().execute();
    });
    return this.writing;
  }
}
