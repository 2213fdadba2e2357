import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Field, ID, Int, ObjectType } from 'type-graphql';
import { GraphQLJSONObject } from 'graphql-scalars';

/** A registered data set: where it comes from (a builtin name or files on disk) and what it holds. */
@ObjectType('Dataset')
@Entity({ name: 'datasets' })
export class DatasetRecord {
  @Field(() => ID)
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Field(() => ID)
  @Column({ name: 'project_id', type: 'uuid' })
  projectId!: string;

  @Field()
  @Column({ type: 'text' })
  name!: string;

  /** The DatasetSource it is loaded from (src/core/data/catalog.ts). */
  @Field(() => GraphQLJSONObject)
  @Column({ type: 'jsonb' })
  source!: Record<string, unknown>;

  /** Where the images came from and how the split was made. */
  @Field()
  @Column({ type: 'text' })
  provenance!: string;

  @Field(() => Int)
  @Column({ name: 'num_classes', type: 'integer' })
  numClasses!: number;

  @Field(() => [String])
  @Column({ name: 'class_names', type: 'text', array: true })
  classNames!: string[];

  @Field(() => Int)
  @Column({ name: 'train_count', type: 'integer' })
  trainCount!: number;

  @Field(() => Int)
  @Column({ name: 'test_count', type: 'integer' })
  testCount!: number;

  /** [height, width, channels] */
  @Field(() => [Int])
  @Column({ name: 'input_shape', type: 'integer', array: true })
  inputShape!: number[];

  /** Hex SHA-256 of the images and labels of both splits. */
  @Field()
  @Column({ name: 'content_hash', type: 'text' })
  contentHash!: string;

  @Field()
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
