import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, ObjectType } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';

/** One stage as stored: a plugin name and its (validated) config. */
export interface StoredStage {
  plugin: string;
  config: Record<string, unknown>;
}

/** An ordered list of stages applied to a teacher model, with the data used to train and evaluate. */
@ObjectType()
@Entity({ name: 'pipelines' })
export class Pipeline {
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Field(() => ID)
  @Column({ name: 'project_id', type: 'uuid' })
  projectId!: string;

  @Field()
  @Column({ type: 'text' })
  name!: string;

  /** [{ plugin, config }] */
  @Field(() => GraphQLJSON)
  @Column({ type: 'jsonb' })
  stages!: StoredStage[];

  @Field(() => ID)
  @Column({ name: 'teacher_model_id', type: 'uuid' })
  teacherModelId!: string;

  /** Real data for stages that need it and for evaluation. */
  @Field(() => ID, { nullable: true })
  @Column({ name: 'dataset_id', type: 'uuid', nullable: true })
  datasetId!: string | null;

  @Field()
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
