import { GraphQLJSONObject } from 'graphql-scalars';
import { Client } from 'pg';
import { inject, injectable } from 'tsyringe';
import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { LOGGER } from '../app/tokens';
import type { Logger } from '../logging/logger';
import { RunStatus } from '../records/enums';

/** Postgres channel of progress events; workers in any process NOTIFY, API servers LISTEN. */
export const PROGRESS_CHANNEL = 'condense_run_progress';
/** At most this many latest metric values travel with an event (NOTIFY payloads stay small). */
const MAX_METRICS = 8;

/** Where a run stands: the running stage's step of total, its time so far and left, its latest losses. */
@ObjectType({ description: 'Latest progress of a run (updated about once a second while it runs)' })
export class RunProgress {
  @Field(() => ID)
  runId!: string;

  @Field(() => RunStatus)
  status!: RunStatus;

  /** The stage reporting, from 0; null before the first stage starts. */
  @Field(() => Int, { nullable: true })
  stageIndex!: number | null;

  @Field(() => String, { nullable: true })
  plugin!: string | null;

  @Field(() => Int)
  step!: number;

  @Field(() => Int)
  total!: number;

  /** Time the stage has run in this attempt. */
  @Field(() => Float)
  elapsedMs!: number;

  /** Estimated time left in the stage, from this attempt's rate; null until a rate is known. */
  @Field(() => Float, { nullable: true })
  etaMs!: number | null;

  @Field(() => GraphQLJSONObject, { description: 'Latest value of each reported metric (losses, lr...)' })
  metrics!: Record<string, number>;

  @Field()
  updatedAt!: Date;
}

/** The JSON form stored in runs.progress and sent with NOTIFY. */
export interface RunProgressJson {
  runId: string;
  status: RunStatus;
  stageIndex: number | null;
  plugin: string | null;
  step: number;
  total: number;
  elapsedMs: number;
  etaMs: number | null;
  metrics: Record<string, number>;
  updatedAt: string;
}

export function progressFromJson(json: RunProgressJson): RunProgress {
  return Object.assign(new RunProgress(), { ...json, updatedAt: new Date(json.updatedAt) });
}

/** Keeps a payload under Postgres' NOTIFY limit: a few metrics, rounded. */
export function compactProgress(progress: RunProgressJson): RunProgressJson {
  const metrics = Object.fromEntries(
    Object.entries(progress.metrics)
      .filter(([, v]) => Number.isFinite(v))
      .slice(0, MAX_METRICS)
      .map(([k, v]) => [k.slice(0, 40), Number(v.toPrecision(6))]),
  );
  return { ...progress, plugin: progress.plugin?.slice(0, 60) ?? null, metrics };
}

type Listener = (progress: RunProgress) => void;

/**
 * Delivers progress events of runs executing in any process to listeners in this one, through one
 * LISTEN connection. Reconnects after a lost connection (events sent meanwhile are missed, but each
 * event carries the whole latest state, so the next one catches up).
 */
@injectable()
export class ProgressHub {
  private client: Client | undefined;
  private readonly listeners = new Set<Listener>();
  private url: string | undefined;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(@inject(LOGGER) private readonly log: Logger) {}

  async start(databaseUrl: string): Promise<void> {
    this.url = databaseUrl;
    this.stopped = false;
    await this.connect();
  }

  /** Calls `listener` with every event (of every run, or of `runId`); returns the unsubscribe function. */
  subscribe(listener: Listener, runId?: string): () => void {
    const wrapped: Listener = runId ? (p) => p.runId === runId && listener(p) : listener;
    this.listeners.add(wrapped);
    return () => this.listeners.delete(wrapped);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new Client({ connectionString: this.url, application_name: 'condense-progress' });
    client.on('notification', (message) => {
      if (message.channel !== PROGRESS_CHANNEL || !message.payload) return;
      let progress: RunProgress;
      try {
        progress = progressFromJson(JSON.parse(message.payload) as RunProgressJson);
      } catch (error) {
        this.log.warn({ err: error }, 'unreadable progress event');
        return;
      }
      for (const listener of this.listeners) listener(progress);
    });
    client.on('error', (error) => {
      this.log.warn({ err: error }, 'progress connection lost; reconnecting');
      void client.end().catch(() => undefined);
      if (this.client === client) this.client = undefined;
      this.scheduleReconnect();
    });
    await client.connect();
    await client.query(`LISTEN ${PROGRESS_CHANNEL}`);
    this.client = client;
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.reconnectTimer = setTimeout(() => {
      this.connect().catch(() => this.scheduleReconnect());
    }, 1000);
    this.reconnectTimer.unref();
  }
}
