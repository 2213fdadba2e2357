import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { Field, Float, ID, Int, ObjectType } from 'type-graphql';

/** One scalar reported by a running stage at one step (a loss, an accuracy...). */
@ObjectType()
@Entity({ name: 'metric_points' })
@Index('metric_points_run_name_step', ['runId', 'name', 'step'])
@Index('metric_points_run_stage_name_step', ['runId', 'stageIndex', 'name', 'step'], { unique: true })
export class MetricPoint {
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Field(() => ID)
  @Column({ name: 'run_id', type: 'uuid' })
  runId!: string;

  @Field(() => Int)
  @Column({ name: 'stage_index', type: 'integer' })
  stageIndex!: number;

  @Field(() => Int)
  @Column({ type: 'integer' })
  step!: number;

  @Field()
  @Column({ type: 'text' })
  name!: string;

  @Field(() => Float)
  @Column({ type: 'double precision' })
  value!: number;

  @Field()
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
