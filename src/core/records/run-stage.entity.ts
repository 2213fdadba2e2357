import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, Int, ObjectType } from 'type-graphql';
import { GraphQLJSONObject } from 'graphql-scalars';
import { StageStatus } from './enums';

/** One stage of a run; (runId, index) is unique. */
@ObjectType()
@Entity({ name: 'run_stages' })
export class RunStage {
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Field(() => ID)
  @Column({ name: 'run_id', type: 'uuid' })
  runId!: string;

  /** Position in the pipeline, from 0. */
  @Field(() => Int)
  @Column({ type: 'integer' })
  index!: number;

  @Field()
  @Column({ type: 'text' })
  plugin!: string;

  /** The plugin's kind: synthesis, distillation or pruning. */
  @Field()
  @Column({ type: 'text' })
  kind!: string;

  @Field(() => StageStatus)
  @Column({ type: 'text', default: StageStatus.queued })
  status!: StageStatus;

  @Field(() => GraphQLJSONObject)
  @Column({ type: 'jsonb' })
  config!: Record<string, unknown>;

  @Field(() => GraphQLJSONObject, { nullable: true })
  @Column({ type: 'jsonb', nullable: true })
  metrics!: Record<string, unknown> | null;

  @Field(() => Date, { nullable: true })
  @Column({ name: 'started_at', type: 'timestamptz', nullable: true })
  startedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true })
  finishedAt!: Date | null;

  @Field(() => Int, { nullable: true })
  @Column({ name: 'wall_ms', type: 'integer', nullable: true })
  wallMs!: number | null;

  @Field(() => ID, { nullable: true })
  @Column({ name: 'output_artifact_id', type: 'uuid', nullable: true })
  outputArtifactId!: string | null;

  /** Set when a worker resumed this stage from an in-stage checkpoint: the step it continued after. */
  @Field(() => Int, { nullable: true })
  @Column({ name: 'resumed_from_step', type: 'integer', nullable: true })
  resumedFromStep!: number | null;
}
