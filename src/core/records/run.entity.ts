import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Extensions, Field, ID, Int, ObjectType } from 'type-graphql';
import { RUNS_VERSIONED } from '../history/runs-versioned';
import { GraphQLJSONObject } from 'graphql-scalars';
import { RunStatus } from './enums';
import { bigintAsNumber } from './transformers';

/** One execution of a pipeline, with everything needed to reproduce and compare it. */
@ObjectType()
@Entity({ name: 'runs' })
export class Run {
  @Extensions(RUNS_VERSIONED)
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Extensions(RUNS_VERSIONED)
  @Field(() => ID)
  @Column({ name: 'pipeline_id', type: 'uuid' })
  pipelineId!: string;

  @Extensions(RUNS_VERSIONED)
  @Field(() => ID)
  @Column({ name: 'project_id', type: 'uuid' })
  projectId!: string;

  @Extensions(RUNS_VERSIONED)
  @Field(() => RunStatus)
  @Column({ type: 'text', default: RunStatus.queued })
  status!: RunStatus;

  @Field(() => String, { nullable: true })
  @Column({ type: 'text', nullable: true })
  error!: string | null;

  /** Machine-readable error class (BAD_USER_INPUT, PLUGIN_FAILED...). */
  @Field(() => String, { nullable: true })
  @Column({ name: 'error_code', type: 'text', nullable: true })
  errorCode!: string | null;

  /** 0 ≤ seed < 2^32 (stored as bigint). */
  @Extensions(RUNS_VERSIONED)
  @Field(() => Number)
  @Column({ type: 'bigint', transformer: bigintAsNumber })
  seed!: number;

  @Field(() => String, { nullable: true })
  @Column({ type: 'text', nullable: true })
  backend!: string | null;

  @Field(() => GraphQLJSONObject, { nullable: true })
  @Column({ type: 'jsonb', nullable: true })
  hardware!: Record<string, unknown> | null;

  /** plugin name → version */
  @Field(() => GraphQLJSONObject, { nullable: true })
  @Column({ name: 'plugin_versions', type: 'jsonb', nullable: true })
  pluginVersions!: Record<string, string> | null;

  @Field(() => String, { nullable: true })
  @Column({ name: 'teacher_hash', type: 'text', nullable: true })
  teacherHash!: string | null;

  @Field(() => String, { nullable: true })
  @Column({ name: 'data_hash', type: 'text', nullable: true })
  dataHash!: string | null;

  /** The pipeline as it was when the run was created (stages with their resolved configs). */
  @Extensions(RUNS_VERSIONED)
  @Field(() => GraphQLJSONObject)
  @Column({ type: 'jsonb' })
  config!: Record<string, unknown>;

  @Extensions(RUNS_VERSIONED)
  @Field(() => GraphQLJSONObject, { nullable: true })
  @Column({ name: 'final_metrics', type: 'jsonb', nullable: true })
  finalMetrics!: Record<string, unknown> | null;

  @Field(() => ID, { nullable: true })
  @Column({ name: 'final_model_id', type: 'uuid', nullable: true })
  finalModelId!: string | null;

  @Field(() => ID, { nullable: true })
  @Column({ name: 'created_by_id', type: 'uuid', nullable: true })
  createdById!: string | null;

  /** Pipeline signature (hash) and its readable form; written with the run (RunService), or by HistoryService.ensureSignatures for older rows. */
  @Column({ type: 'text', nullable: true })
  signature!: string | null;

  @Column({ name: 'signature_text', type: 'text', nullable: true })
  signatureText!: string | null;

  /** Numeric copies of final metrics, written by a database trigger from `final_metrics`, for ranking queries. */
  @Column({ name: 'metric_top1', type: 'double precision', nullable: true, insert: false, update: false, select: false })
  metricTop1!: number | null;

  @Column({ name: 'metric_params', type: 'double precision', nullable: true, insert: false, update: false, select: false })
  metricParams!: number | null;

  @Column({ name: 'metric_macs', type: 'double precision', nullable: true, insert: false, update: false, select: false })
  metricMacs!: number | null;

  @Column({ name: 'metric_bytes', type: 'double precision', nullable: true, insert: false, update: false, select: false })
  metricBytes!: number | null;

  @Column({ name: 'metric_latency_ms', type: 'double precision', nullable: true, insert: false, update: false, select: false })
  metricLatencyMs!: number | null;

  @Extensions(RUNS_VERSIONED)
  @Field()
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  @Column({ name: 'started_at', type: 'timestamptz', nullable: true })
  startedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true })
  finishedAt!: Date | null;

  /** The worker process executing the run (host:pid:uuid), while it runs. */
  @Field(() => String, { nullable: true })
  @Column({ name: 'worker_id', type: 'text', nullable: true })
  workerId!: string | null;

  /** Refreshed every few seconds by the executing worker; a stale one means the worker died. */
  @Field(() => Date, { nullable: true })
  @Column({ name: 'heartbeat_at', type: 'timestamptz', nullable: true })
  heartbeatAt!: Date | null;

  @Field(() => Date, { nullable: true })
  @Column({ name: 'cancel_requested_at', type: 'timestamptz', nullable: true })
  cancelRequestedAt!: Date | null;

  /** How many times a worker has started (or resumed) this run. */
  @Field(() => Int)
  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  /** Latest progress of the running stage (see RunProgress), updated with each batch of metric points. */
  @Column({ type: 'jsonb', nullable: true })
  progress!: Record<string, unknown> | null;
}
