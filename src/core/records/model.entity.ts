import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { GraphQLJSONObject } from 'graphql-scalars';
import { ModelOrigin } from './enums';

/** A classifier stored in the artifact store (a TF.js LayersModel directory) with what we know of it. */
@ObjectType('Model')
@Entity({ name: 'models' })
export class ModelRecord {
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Field(() => ID)
  @Column({ name: 'project_id', type: 'uuid' })
  projectId!: string;

  @Field()
  @Column({ type: 'text' })
  name!: string;

  /** A zoo architecture name ('lenet5-bn', ...) or 'custom' for imported models. */
  @Field()
  @Column({ type: 'text' })
  architecture!: string;

  /** The zoo spec the model was built from (architecture, width, depth...), when it came from the zoo. */
  @Field(() => GraphQLJSONObject, { nullable: true })
  @Column({ type: 'jsonb', nullable: true })
  spec!: Record<string, unknown> | null;

  /** [height, width, channels] */
  @Field(() => [Int])
  @Column({ name: 'input_shape', type: 'integer', array: true })
  inputShape!: number[];

  @Field(() => Int)
  @Column({ name: 'num_classes', type: 'integer' })
  numClasses!: number;

  @Field(() => [String])
  @Column({ name: 'class_names', type: 'text', array: true })
  classNames!: string[];

  @Field(() => ID)
  @Column({ name: 'artifact_id', type: 'uuid' })
  artifactId!: string;

  /** Hex SHA-256 of the stored model directory. */
  @Field()
  @Column({ name: 'content_hash', type: 'text' })
  contentHash!: string;

  @Field(() => Int)
  @Column({ type: 'integer' })
  params!: number;

  /** Multiply-accumulates for one image. */
  @Field(() => Float)
  @Column({ type: 'double precision' })
  macs!: number;

  /** Size of the model directory on disk. */
  @Field(() => Int)
  @Column({ type: 'integer' })
  bytes!: number;

  /** Measured figures (top1, top5, trainMs, latency...). */
  @Field(() => GraphQLJSONObject)
  @Column({ type: 'jsonb', default: () => "'{}'" })
  metrics!: Record<string, unknown>;

  @Field(() => ModelOrigin)
  @Column({ type: 'text' })
  origin!: ModelOrigin;

  /** The dataset it was trained on, when Condense trained it. */
  @Field(() => ID, { nullable: true })
  @Column({ name: 'dataset_id', type: 'uuid', nullable: true })
  datasetId!: string | null;

  /** The run that produced it, for pipeline outputs. */
  @Field(() => ID, { nullable: true })
  @Column({ name: 'run_id', type: 'uuid', nullable: true })
  runId!: string | null;

  @Field()
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
